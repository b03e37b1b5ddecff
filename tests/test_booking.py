"""The booking core through the HTTP API (real PostgreSQL).

covers: TCH-1, TCH-2, FM-6, PAR-1, PAR-3, H5-1, H5-3, H5-4, H5-5, LP-2, LP-3, LP-8
"""

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text

from store.db import Sessions
from tests.conftest import T0, Clock
from tests.helpers import (
    CC,
    FIREMAN,
    LP,
    as_,
    assert_money_consistent,
    balances,
    book,
    grant,
    open_slots,
    student,
    teacher,
)

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


async def test_teacher_opens_a_week_and_closes_unbooked_slots(api: httpx.AsyncClient) -> None:
    """TCH-1, TCH-2."""
    t = await teacher(api)
    week = [T0 + DAY + i * timedelta(minutes=30) for i in range(7 * 48)]
    r = await api.post(
        f"/v1/teachers/{t}/timeslots",
        json={"start_at": [s.isoformat() for s in week]},
        headers=as_("teacher", t),
    )
    assert r.status_code == 201
    assert len(r.json()["opened"]) == 336 and r.json()["skipped"] == []
    again = await api.post(
        f"/v1/teachers/{t}/timeslots",
        json={"start_at": [week[0].isoformat()]},
        headers=as_("teacher", t),
    )
    assert again.json()["opened"] == [] and len(again.json()["skipped"]) == 1
    ids = [s["id"] for s in r.json()["opened"]]
    closed = await api.post(
        f"/v1/teachers/{t}/timeslots/close",
        json={"timeslot_ids": ids[:3]},
        headers=as_("teacher", t),
    )
    assert closed.status_code == 200 and len(closed.json()["closed"]) == 3
    avail = await api.get(
        "/v1/timeslots",
        params={"start_from": T0.isoformat(), "start_to": (T0 + 9 * DAY).isoformat()},
        headers=as_("parent_h5", 1),
    )
    assert len(avail.json()) == 200  # the page limit
    avail = await api.get(
        "/v1/timeslots",
        params={
            "start_from": week[0].isoformat(),
            "start_to": week[4].isoformat(),
            "teacher_id": t,
        },
        headers=as_("parent_h5", 1),
    )
    assert [s["id"] for s in avail.json()] == [ids[3]]
    # A closed slot can be opened again.
    reopened = await open_slots(api, t, week[0])
    assert len(reopened) == 1


async def test_fireman_opens_and_closes_on_a_teachers_behalf(api: httpx.AsyncClient) -> None:
    """FM-6."""
    t = await teacher(api)
    r = await api.post(
        f"/v1/teachers/{t}/timeslots",
        json={"start_at": [(T0 + DAY).isoformat()]},
        headers=FIREMAN,
    )
    assert r.status_code == 201
    slot = r.json()["opened"][0]["id"]
    r = await api.post(
        f"/v1/teachers/{t}/timeslots/close", json={"timeslot_ids": [slot]}, headers=FIREMAN
    )
    assert r.status_code == 200
    trail = await api.get(f"/v1/timeslots/{slot}/audit", headers=FIREMAN)
    assert [(e["action"], e["channel"]) for e in trail.json()] == [
        ("opened", "fireman"),
        ("closed", "fireman"),
    ]


async def test_book_with_credit_and_cancel_early_refunds(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """PAR-1, H5-1 (credit), PAR-3 / H5-5 with refund."""
    t = await teacher(api)
    s = await student(api, credits={"major": 2})
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    r = await book(api, s, slot, channel="parent_pc")
    assert r.status_code == 201, r.text
    cls = r.json()
    assert (cls["teacher_id"], cls["state"], cls["payment_asset"]) == (t, "booked", "credit")
    assert (await balances(api, s))["credits"] == {"major": 1}
    again = await book(api, s, slot)
    assert again.json()["code"] == "slot_already_booked"

    r = await api.post(f"/v1/classes/{cls['id']}/cancel", json={}, headers=as_("parent_pc", s))
    assert r.status_code == 200 and r.json()["refunded"] is True
    assert (await balances(api, s))["credits"] == {"major": 2}
    # The slot is bookable again.
    assert (await book(api, s, slot)).status_code == 201
    await assert_money_consistent(db)


async def test_late_cancel_keeps_the_payment(
    api: httpx.AsyncClient, clock: Clock, db: Sessions
) -> None:
    """H5-5: less than 24 h before the start there is no refund."""
    t = await teacher(api)
    s = await student(api, credits={"major": 1})
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    cls = (await book(api, s, slot)).json()
    clock.advance(DAY + timedelta(minutes=1))
    r = await api.post(f"/v1/classes/{cls['id']}/cancel", json={}, headers=as_("parent_h5", s))
    assert r.status_code == 200 and r.json()["refunded"] is False
    assert (await balances(api, s))["credits"] == {"major": 0}
    r = await api.post(f"/v1/classes/{cls['id']}/cancel", json={}, headers=as_("parent_h5", s))
    assert r.json()["code"] == "class_not_cancellable"
    await assert_money_consistent(db)


async def test_cancel_after_the_start_is_refused(api: httpx.AsyncClient, clock: Clock) -> None:
    t = await teacher(api)
    s = await student(api, credits={"major": 1})
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    cls = (await book(api, s, slot)).json()
    clock.advance(2 * DAY)
    r = await api.post(f"/v1/classes/{cls['id']}/cancel", json={}, headers=LP)
    assert (r.status_code, r.json()["code"]) == (409, "class_started")


async def special_started(api: httpx.AsyncClient, s: int) -> None:
    """H5-6: a special class is booked once the student's special course has started."""
    r = await api.post(f"/v1/students/{s}/courses", json={"course_type": "special"}, headers=LP)
    assert r.status_code == 201, r.text


async def test_book_with_a_coupon_once(api: httpx.AsyncClient, db: Sessions) -> None:
    """H5-1 (coupon): single use, course type and expiry checked."""
    t = await teacher(api, course_types=("major", "special"))
    s = await student(api)
    await special_started(api, s)
    slots = await open_slots(api, t, T0 + 2 * DAY, T0 + 3 * DAY, T0 + 4 * DAY)
    coupon = (
        await api.post(
            f"/v1/students/{s}/coupons",
            json={"course_type": "major", "expires_at": (T0 + 10 * DAY).isoformat()},
            headers=CC,
        )
    ).json()
    pay = {"asset": "coupon", "coupon_id": coupon["id"]}
    wrong = await book(api, s, slots[0], course_type="special", payment=pay)
    assert (wrong.status_code, wrong.json()["code"]) == (422, "coupon_wrong_course_type")
    assert (await book(api, s, slots[0], payment=pay)).status_code == 201
    used = await book(api, s, slots[1], payment=pay)
    assert (used.status_code, used.json()["code"]) == (409, "coupon_used")
    assert (await balances(api, s))["coupons"][0]["usable"] is False
    await assert_money_consistent(db)


async def test_expired_coupon_is_refused(api: httpx.AsyncClient, clock: Clock) -> None:
    t = await teacher(api)
    s = await student(api)
    [slot] = await open_slots(api, t, T0 + 5 * DAY)
    coupon = (
        await api.post(
            f"/v1/students/{s}/coupons",
            json={"course_type": "major", "expires_at": (T0 + DAY).isoformat()},
            headers=CC,
        )
    ).json()
    clock.advance(2 * DAY)
    r = await book(api, s, slot, payment={"asset": "coupon", "coupon_id": coupon["id"]})
    assert (r.status_code, r.json()["code"]) == (409, "coupon_expired")


async def test_book_with_energy_stones_at_the_set_price(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """H5-1 (stones), H5-3 (special), H5-4 (L7 major, for a Level 7 student)."""
    t = await teacher(api, course_types=("major", "special", "l7_major"))
    s = await student(api, level=7)
    await special_started(api, s)
    await grant(api, s, "stones", 250)
    slots = await open_slots(api, t, T0 + 2 * DAY, T0 + 3 * DAY, T0 + 4 * DAY)
    stones = {"asset": "stones"}
    assert (await book(api, s, slots[0], course_type="special", payment=stones)).status_code == 201
    assert (await balances(api, s))["stones"] == 130
    r = await book(api, s, slots[1], course_type="l7_major", payment=stones)
    assert (r.status_code, r.json()["code"]) == (409, "insufficient_balance")
    assert (await balances(api, s))["stones"] == 130
    assert (await book(api, s, slots[2], course_type="major", payment=stones)).status_code == 201
    assert (await balances(api, s))["stones"] == 30
    await assert_money_consistent(db)


async def test_insufficient_credit_changes_nothing(api: httpx.AsyncClient, db: Sessions) -> None:
    t = await teacher(api)
    s = await student(api)
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    r = await book(api, s, slot)
    assert (r.status_code, r.json()["code"]) == (409, "insufficient_balance")
    async with db() as session:
        state = await session.scalar(text("select state from timeslots where id = :i"), {"i": slot})
        classes = await session.scalar(text("select count(*) from classes"))
    assert (state, classes) == ("open", 0)


async def test_student_busy_at_that_time(api: httpx.AsyncClient) -> None:
    t1, t2 = await teacher(api), await teacher(api)
    s = await student(api, credits={"major": 5})
    [a] = await open_slots(api, t1, T0 + 2 * DAY)
    [b] = await open_slots(api, t2, T0 + 2 * DAY)
    assert (await book(api, s, a)).status_code == 201
    r = await book(api, s, b)
    assert (r.status_code, r.json()["code"]) == (409, "student_busy")
    assert (await balances(api, s))["credits"] == {"major": 4}


async def test_booking_windows_and_course_types(api: httpx.AsyncClient, clock: Clock) -> None:
    t = await teacher(api)
    s = await student(api, credits={"major": 5, "trial": 1})
    slots = await open_slots(api, t, T0 + HOUR, T0 + 2 * DAY, T0 + 5 * 7 * DAY)
    clock.advance(timedelta(minutes=30))
    too_late = await book(api, s, slots[0])
    assert (too_late.status_code, too_late.json()["code"]) == (422, "outside_booking_window")
    too_far = await book(api, s, slots[2])
    assert too_far.json()["code"] == "outside_booking_window"
    wrong = await book(api, s, slots[1], course_type="trial")
    assert (wrong.status_code, wrong.json()["code"]) == (422, "course_type_not_taught")
    clock.advance(3 * DAY)
    past = await book(api, s, slots[1])
    assert (past.status_code, past.json()["code"]) == (422, "in_past")


async def test_lp_books_several_slots_all_or_nothing(api: httpx.AsyncClient, db: Sessions) -> None:
    """LP-8."""
    t, other = await teacher(api), await teacher(api)
    s = await student(api, credits={"major": 10})
    slots = await open_slots(api, t, T0 + 2 * DAY, T0 + 3 * DAY, T0 + 4 * DAY)
    [foreign] = await open_slots(api, other, T0 + 5 * DAY)
    body = {"student_id": s, "course_type": "major", "timeslot_ids": slots}
    r = await api.post("/v1/classes/batch", json=body, headers=LP)
    assert r.status_code == 201 and len(r.json()["classes"]) == 3
    # One slot already booked: nothing of the batch is booked.
    more = await open_slots(api, t, T0 + 6 * DAY)
    body = {"student_id": s, "course_type": "major", "timeslot_ids": [more[0], slots[0]]}
    r = await api.post("/v1/classes/batch", json=body, headers=LP)
    assert (r.status_code, r.json()["code"]) == (409, "slot_already_booked")
    mixed = {"student_id": s, "course_type": "major", "timeslot_ids": [more[0], foreign]}
    r = await api.post("/v1/classes/batch", json=mixed, headers=LP)
    assert (r.status_code, r.json()["code"]) == (422, "mixed_teachers")
    assert (await balances(api, s))["credits"] == {"major": 7}
    avail = await api.get(
        "/v1/timeslots",
        params={"start_from": T0.isoformat(), "start_to": (T0 + 9 * DAY).isoformat()},
        headers=LP,
    )
    assert sorted(x["id"] for x in avail.json()) == sorted([more[0], foreign])
    await assert_money_consistent(db)


async def test_ledger_and_audit_trail_tell_what_happened(api: httpx.AsyncClient) -> None:
    t = await teacher(api)
    s = await student(api, credits={"major": 1})
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    cls = (await book(api, s, slot, channel="lp")).json()
    await api.post(f"/v1/classes/{cls['id']}/cancel", json={"reason": "ill"}, headers=FIREMAN)
    ledger = (await api.get(f"/v1/students/{s}/ledger", headers=CC)).json()
    assert [(e["reason"], e["delta"], e["class_id"]) for e in ledger] == [
        ("refund", 1, cls["id"]),
        ("booking", -1, cls["id"]),
        ("grant", 1, None),
    ]
    trail = (await api.get(f"/v1/classes/{cls['id']}/audit", headers=FIREMAN)).json()
    assert [(e["action"], e["channel"]) for e in trail] == [
        ("booked", "lp"),
        ("cancelled", "fireman"),
    ]
    assert trail[1]["details"] == {"refunded": True, "reason": "ill", "by_teacher": False}


async def test_ledger_is_append_only(api: httpx.AsyncClient, db: Sessions) -> None:
    s = await student(api, credits={"major": 1})
    with pytest.raises(Exception, match="append-only"):
        async with db.begin() as session:
            await session.execute(text("update ledger_entries set delta = 100"))
    assert (await balances(api, s))["credits"] == {"major": 1}
