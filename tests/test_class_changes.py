"""Force-book (FM-1), change teacher (FM-5, TMK-3, CC-3), change student (TMK-5, CC-5): each
one transaction, each refusal its own code with nothing changed, money consistent after every
sequence, and races where two calls compete.

covers: FM-1, FM-5, TMK-3, CC-3, TMK-5, CC-5
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

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
    client_showing_500s,
    grant,
    open_slots,
    refused,
    student,
    teacher,
)
from tests.test_events import settle
from yueke.settings import Settings

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
TMK = as_("tmk")
FORCE = "/v1/classes/force-book"


@pytest.fixture
async def api(settings: Settings, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    """A lost race must be a clear 409, so a 500 is an answer to count, not an exception."""
    async with client_showing_500s(settings, clock) as client:
        yield client


def force(s: int, t: int, at: Any, course_type: str = "major", **extra: Any) -> dict[str, Any]:
    return {
        "student_id": s,
        "teacher_id": t,
        "start_at": at.isoformat(),
        "course_type": course_type,
        "reason": "parent called",
        **extra,
    }


def outcome(r: httpx.Response) -> tuple[int, str | None]:
    if r.status_code >= 500:
        return r.status_code, r.text[:80]
    return r.status_code, (r.json().get("code") if r.status_code >= 400 else None)


async def slot_of(api: httpx.AsyncClient, timeslot_id: int) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/timeslots/{timeslot_id}/audit", headers=FIREMAN)
    assert r.status_code == 200, r.text
    return list(r.json())


async def open_at(api: httpx.AsyncClient, teacher_id: int, start: Any) -> list[dict[str, Any]]:
    r = await api.get(
        "/v1/timeslots",
        params={
            "start_from": start.isoformat(),
            "start_to": (start + timedelta(minutes=1)).isoformat(),
            "teacher_id": teacher_id,
        },
        headers=CC,
    )
    assert r.status_code == 200, r.text
    return list(r.json())


# --- FM-1 force-book ------------------------------------------------------------------------


async def test_force_book_past_the_windows_new_slot_or_open_one(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    t = await teacher(api, course_types=("major", "trial"))
    s = await student(api, credits={"major": 3})
    await grant(api, s, "stones", 100)
    # 10 minutes ahead (inside the 1 h lead) and 6 weeks ahead (past the 4-week horizon),
    # where the teacher has no slot: made, directed at the student, booked.
    soon, far = T0 + timedelta(minutes=30), T0 + 6 * 7 * DAY
    for at in (soon, far):
        r = await api.post(FORCE, json=force(s, t, at), headers=FIREMAN)
        assert r.status_code == 201, r.text
        assert (r.json()["state"], r.json()["teacher_id"]) == ("booked", t)
    # An open general slot of the teacher at that start is taken over.
    [general] = await open_slots(api, t, T0 + 2 * DAY)
    r = await api.post(
        FORCE,
        json=force(s, t, T0 + 2 * DAY, "trial", payment={"asset": "stones"}),
        headers=FIREMAN,
    )
    assert r.status_code == 201, r.text
    c = r.json()
    assert (c["timeslot_id"], c["payment_asset"], c["payment_amount"]) == (general, "stones", 50)
    trail = (await api.get(f"/v1/classes/{c['id']}/audit", headers=FIREMAN)).json()
    assert [(e["action"], e["channel"], e["details"]["reason"]) for e in trail] == [
        ("force_booked", "fireman", "parent called")
    ]
    assert [e["action"] for e in await slot_of(api, general)] == ["opened", "force_booked"]
    money = await balances(api, s)
    assert (money["credits"], money["stones"]) == ({"major": 1}, 50)
    # Cancelled, the force-booked slot becomes general inventory, as a held slot does.
    r = await api.post(f"/v1/classes/{c['id']}/cancel", json={}, headers=FIREMAN)
    assert r.status_code == 200, r.text
    assert [x["id"] for x in await open_at(api, t, T0 + 2 * DAY)] == [general]
    await assert_money_consistent(db)


async def test_force_book_refusals_change_nothing(api: httpx.AsyncClient, db: Sessions) -> None:
    t = await teacher(api)
    other = await teacher(api)
    chinese = await teacher(api, kind="chinese", course_types=("advanced",))
    s = await student(api, credits={"major": 2})
    busy = await student(api, credits={"major": 2})
    poor = await student(api)
    at = T0 + 2 * DAY
    [slot] = await open_slots(api, t, at)
    assert (await book(api, busy, slot)).status_code == 201
    # The teacher has a class then: never a hard conflict.
    await refused(api, db, FORCE, force(s, t, at), FIREMAN, 409, "teacher_busy")
    # The student has a class then (with another teacher).
    await refused(api, db, FORCE, force(busy, other, at), FIREMAN, 409, "student_busy")
    await refused(api, db, FORCE, force(s, t, at, "trial"), FIREMAN, 422, "course_type_not_taught")
    await refused(
        api, db, FORCE, force(s, chinese, at), FIREMAN, 422, "course_type_not_for_chinese_teacher"
    )
    await refused(api, db, FORCE, force(poor, other, at), FIREMAN, 409, "insufficient_balance")
    await refused(
        api, db, FORCE, force(s, other, at + timedelta(minutes=10)), FIREMAN, 422, "off_grid"
    )
    await refused(api, db, FORCE, force(s, other, T0 - HOUR), FIREMAN, 422, "in_past")
    await refused(api, db, FORCE, force(999999, other, at), FIREMAN, 404, "student_not_found")
    await refused(api, db, FORCE, force(s, 999999, at), FIREMAN, 404, "teacher_not_found")
    for reason in (None, "", "   "):
        body = force(s, other, at)
        body.pop("reason") if reason is None else body.update(reason=reason)
        await refused(api, db, FORCE, body, FIREMAN, 422, "malformed_body")
    await refused(api, db, FORCE, force(s, other, at), LP, 403, "forbidden_channel")
    await assert_money_consistent(db)


async def test_two_force_books_of_one_teachers_time_one_wins(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    t = await teacher(api)
    students = [await student(api, credits={"major": 1}) for _ in range(6)]
    at = T0 + 3 * DAY
    answers = await asyncio.gather(
        *(api.post(FORCE, json=force(s, t, at), headers=FIREMAN) for s in students)
    )
    assert Counter(outcome(r) for r in answers) == {(201, None): 1, (409, "teacher_busy"): 5}
    await assert_money_consistent(db)


# --- FM-5, TMK-3, CC-3 change teacher ---------------------------------------------------------


async def booked(
    api: httpx.AsyncClient, course_type: str = "trial", at: Any = None
) -> tuple[int, int, int, int]:
    """(class, student, teacher, timeslot) of a booked class at T0 + 2 days."""
    t = await teacher(api, course_types=(course_type,))
    s = await student(api, credits={course_type: 2})
    [slot] = await open_slots(api, t, at or T0 + 2 * DAY)
    r = await book(api, s, slot, course_type=course_type)
    assert r.status_code == 201, r.text
    return int(r.json()["id"]), s, t, slot


async def test_change_teacher_reopen_or_remove_the_old_slot(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    c, s, t, old = await booked(api)
    new = await teacher(api, course_types=("trial",))
    r = await api.post(
        f"/v1/classes/{c}/change-teacher",
        json={"teacher_id": new, "old_slot": "reopen", "reason": "parent prefers"},
        headers=CC,
    )
    assert r.status_code == 200, r.text
    moved = r.json()
    assert (moved["teacher_id"], moved["state"], moved["payment_amount"]) == (new, "booked", 1)
    assert moved["timeslot_id"] != old
    # The old slot is general inventory again: another student books it.
    assert [x["id"] for x in await open_at(api, t, T0 + 2 * DAY)] == [old]
    other = await student(api, credits={"trial": 1})
    assert (await book(api, other, old, course_type="trial")).status_code == 201
    # Fireman moves it again, onto the first teacher's... no: a third teacher's open general
    # slot, taken over; the old one removed.
    third = await teacher(api, course_types=("trial",))
    [taken] = await open_slots(api, third, T0 + 2 * DAY)
    r = await api.post(
        f"/v1/classes/{c}/change-teacher",
        json={"teacher_id": third, "old_slot": "remove"},
        headers=FIREMAN,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["teacher_id"], r.json()["timeslot_id"]) == (third, taken)
    assert await open_at(api, new, T0 + 2 * DAY) == []
    trail = (await api.get(f"/v1/classes/{c}/audit", headers=FIREMAN)).json()
    assert [(e["action"], e["channel"]) for e in trail] == [
        ("booked", "parent_h5"),
        ("teacher_changed", "cc"),
        ("teacher_changed", "fireman"),
    ]
    assert trail[1]["details"]["old_teacher_id"] == t
    assert trail[1]["details"]["new_teacher_id"] == new
    assert trail[1]["details"]["old_slot"] == "reopen"
    assert trail[2]["details"]["old_slot"] == "remove"
    assert [e["action"] for e in await slot_of(api, old)][-2:] == ["freed", "booked"]
    # The payment was untouched: one trial credit spent.
    assert (await balances(api, s))["credits"] == {"trial": 1}
    # Cancelling now frees the third teacher's slot as general inventory.
    r = await api.post(f"/v1/classes/{c}/cancel", json={}, headers=CC)
    assert (r.status_code, r.json()["refunded"]) == (200, True)
    assert [x["id"] for x in await open_at(api, third, T0 + 2 * DAY)] == [taken]
    await assert_money_consistent(db)


async def test_change_teacher_refusals_change_nothing(
    api: httpx.AsyncClient, db: Sessions, clock: Clock
) -> None:
    c, s, t, _ = await booked(api)
    url = f"/v1/classes/{c}/change-teacher"
    busy_teacher = await teacher(api, course_types=("trial",))
    [theirs] = await open_slots(api, busy_teacher, T0 + 2 * DAY)
    assert await book(api, await student(api, credits={"trial": 1}), theirs, course_type="trial")
    major_only = await teacher(api, course_types=("major",))
    chinese = await teacher(api, kind="chinese", course_types=("advanced",))
    free = await teacher(api, course_types=("trial",))
    body: dict[str, Any] = {"teacher_id": busy_teacher, "old_slot": "reopen"}
    await refused(api, db, url, body, FIREMAN, 409, "teacher_busy")
    await refused(api, db, url, {**body, "teacher_id": t}, FIREMAN, 409, "teacher_busy")
    await refused(
        api, db, url, {**body, "teacher_id": major_only}, FIREMAN, 422, "course_type_not_taught"
    )
    await refused(
        api,
        db,
        url,
        {**body, "teacher_id": chinese},
        CC,
        422,
        "course_type_not_for_chinese_teacher",
    )
    await refused(api, db, url, {**body, "teacher_id": 999999}, CC, 404, "teacher_not_found")
    await refused(
        api,
        db,
        "/v1/classes/999999/change-teacher",
        {**body, "teacher_id": free},
        FIREMAN,
        404,
        "class_not_found",
    )
    await refused(api, db, url, {"teacher_id": free, "old_slot": "keep"}, CC, 422, "malformed_body")
    await refused(api, db, url, {**body, "teacher_id": free}, LP, 403, "forbidden_channel")
    # TMK and CC change trial classes only; fireman any.
    m, _, _, _ = await booked(api, "major")
    major_free = await teacher(api, course_types=("major",))
    major_body = {"teacher_id": major_free, "old_slot": "remove"}
    for headers in (TMK, CC):
        await refused(
            api,
            db,
            f"/v1/classes/{m}/change-teacher",
            major_body,
            headers,
            403,
            "trial_classes_only",
        )
    r = await api.post(f"/v1/classes/{m}/change-teacher", json=major_body, headers=FIREMAN)
    assert r.status_code == 200, r.text
    # Started, or cancelled: its own code.
    clock.now = T0 + 2 * DAY
    await refused(api, db, url, {**body, "teacher_id": free}, TMK, 409, "class_started")
    clock.now = T0
    assert (await api.post(f"/v1/classes/{c}/cancel", json={}, headers=CC)).status_code == 200
    details = await refused(
        api, db, url, {**body, "teacher_id": free}, TMK, 409, "class_not_booked"
    )
    assert details["state"] == "cancelled"
    assert (await balances(api, s))["credits"] == {"trial": 2}
    await assert_money_consistent(db)


async def test_two_classes_changed_to_one_teacher_at_once_one_wins(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    classes = [(await booked(api))[0] for _ in range(4)]
    new = await teacher(api, course_types=("trial",))
    answers = await asyncio.gather(
        *(
            api.post(
                f"/v1/classes/{c}/change-teacher",
                json={"teacher_id": new, "old_slot": "reopen"},
                headers=FIREMAN,
            )
            for c in classes
        )
    )
    assert Counter(outcome(r) for r in answers) == {(200, None): 1, (409, "teacher_busy"): 3}
    await assert_money_consistent(db)


# --- TMK-5, CC-5 change student -----------------------------------------------------------------


async def test_change_student_refunds_the_first_and_charges_the_second(
    api: httpx.AsyncClient, db: Sessions, clock: Clock
) -> None:
    c, first, _, _ = await booked(api, "trial")
    second = await student(api)
    await grant(api, second, "stones", 60)
    clock.now = T0 + 2 * DAY - HOUR  # an hour before: a cancel would not be refunded
    r = await api.post(
        f"/v1/classes/{c}/change-student",
        json={"student_id": second, "payment": {"asset": "stones"}, "reason": "sibling"},
        headers=TMK,
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["student_id"], got["payment_asset"], got["payment_amount"]) == (
        second,
        "stones",
        50,
    )
    assert (await balances(api, first))["credits"] == {"trial": 2}
    assert (await balances(api, second))["stones"] == 10
    # And back, with a coupon of the first student's.
    r = await api.post(
        f"/v1/students/{first}/coupons",
        json={"course_type": "trial", "expires_at": (T0 + 9 * DAY).isoformat()},
        headers=CC,
    )
    coupon = r.json()["id"]
    r = await api.post(
        f"/v1/classes/{c}/change-student",
        json={"student_id": first, "payment": {"asset": "coupon", "coupon_id": coupon}},
        headers=CC,
    )
    assert r.status_code == 200, r.text
    assert (await balances(api, second))["stones"] == 60
    money = await balances(api, first)
    assert (money["credits"], money["coupons"][0]["usable"]) == ({"trial": 2}, False)
    trail = (await api.get(f"/v1/classes/{c}/audit", headers=FIREMAN)).json()
    assert [(e["action"], e["channel"]) for e in trail] == [
        ("booked", "parent_h5"),
        ("student_changed", "tmk"),  # one row for each student
        ("student_changed", "tmk"),
        ("student_changed", "cc"),
        ("student_changed", "cc"),
    ]
    assert trail[1]["details"]["old_student_id"] == first
    assert trail[1]["details"]["reason"] == "sibling"
    await assert_money_consistent(db)


async def test_both_students_parents_see_the_change_in_their_feed(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """The student taken off learns of it in their parent channel's feed, as the newcomer does;
    the teacher's feed has it once."""
    c, first, t, _ = await booked(api, "trial")
    second = await student(api, credits={"trial": 2})
    r = await api.post(f"/v1/classes/{c}/change-student", json={"student_id": second}, headers=TMK)
    assert r.status_code == 200, r.text
    await settle(db)
    for who, headers in (
        (first, as_("parent_pc", first)),
        (second, as_("parent_h5", second)),
        (t, as_("teacher", t)),
    ):
        r = await api.get("/v1/events", params={"types": "class.student_changed"}, headers=headers)
        assert r.status_code == 200, r.text
        [event] = r.json()["events"]
        assert (event["entity_id"], event["payload"]["old_student_id"]) == (c, first), who
        assert event["payload"]["new_student_id"] == second


async def test_change_student_refusals_change_nothing(
    api: httpx.AsyncClient, db: Sessions, clock: Clock
) -> None:
    c, first, _, _ = await booked(api, "trial")
    url = f"/v1/classes/{c}/change-student"
    busy = await student(api, credits={"trial": 2})
    other_t = await teacher(api, course_types=("trial",))
    [slot] = await open_slots(api, other_t, T0 + 2 * DAY)
    assert (await book(api, busy, slot, course_type="trial")).status_code == 201
    poor = await student(api, credits={"major": 5})
    await refused(api, db, url, {"student_id": busy}, TMK, 409, "student_busy")
    await refused(api, db, url, {"student_id": first}, TMK, 409, "student_busy")
    await refused(api, db, url, {"student_id": poor}, CC, 409, "insufficient_balance")
    await refused(
        api,
        db,
        url,
        {"student_id": poor, "payment": {"asset": "stones"}},
        CC,
        409,
        "insufficient_balance",
    )
    await refused(api, db, url, {"student_id": 999999}, CC, 404, "student_not_found")
    await refused(
        api,
        db,
        "/v1/classes/999999/change-student",
        {"student_id": poor},
        CC,
        404,
        "class_not_found",
    )
    await refused(api, db, url, {"student_id": poor}, FIREMAN, 403, "forbidden_channel")
    await refused(api, db, url, {"student_id": "x"}, CC, 422, "malformed_body")
    clock.now = T0 + 2 * DAY
    await refused(api, db, url, {"student_id": busy}, CC, 409, "class_started")
    clock.now = T0
    assert (await api.post(f"{url.rsplit('/', 1)[0]}/cancel", json={}, headers=CC)).is_success
    await refused(api, db, url, {"student_id": poor}, CC, 409, "class_not_booked")
    await assert_money_consistent(db)


async def test_two_change_students_of_one_class_at_once_one_wins(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """The same newcomer twice, and a cancel against a change: one wins, money adds up."""
    c, first, _, _ = await booked(api, "trial")
    second = await student(api, credits={"trial": 3})
    answers = await asyncio.gather(
        *(
            api.post(f"/v1/classes/{c}/change-student", json={"student_id": second}, headers=h)
            for h in (TMK, CC, TMK, CC)
        )
    )
    assert Counter(outcome(r) for r in answers) == {(200, None): 1, (409, "student_busy"): 3}
    assert (await balances(api, first))["credits"] == {"trial": 2}
    assert (await balances(api, second))["credits"] == {"trial": 2}
    third = await student(api, credits={"trial": 1})
    change, cancel = await asyncio.gather(
        api.post(f"/v1/classes/{c}/change-student", json={"student_id": third}, headers=CC),
        api.post(f"/v1/classes/{c}/cancel", json={}, headers=CC),
    )
    assert cancel.status_code == 200, cancel.text
    assert outcome(change) in {(200, None), (409, "class_not_booked")}, change.text
    # Whoever held the class at the cancel (24 h+ ahead) got it back; nobody paid for nothing.
    assert (await balances(api, second))["credits"] == {"trial": 3}
    assert (await balances(api, third))["credits"] == {"trial": 1}
    await assert_money_consistent(db)


async def test_special_classes_wait_for_the_course_here_too(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """H5-6: a special class is for a student whose special course has started, whether
    force-booked or handed over."""
    t = await teacher(api, course_types=("special",))
    s = await student(api, credits={"special": 2})
    other = await student(api, credits={"special": 2})
    await refused(
        api, db, FORCE, force(s, t, T0 + 2 * DAY, "special"), FIREMAN, 409, "course_not_started"
    )
    for who in (s, other):
        r = await api.post(
            f"/v1/students/{who}/courses", json={"course_type": "special"}, headers=LP
        )
        assert r.status_code in (200, 201), r.text
    r = await api.post(FORCE, json=force(s, t, T0 + 2 * DAY, "special"), headers=FIREMAN)
    assert r.status_code == 201, r.text
    c = r.json()["id"]
    late = await student(api, credits={"special": 2})
    url = f"/v1/classes/{c}/change-student"
    await refused(api, db, url, {"student_id": late}, CC, 409, "course_not_started")
    r = await api.post(url, json={"student_id": other}, headers=CC)
    assert (r.status_code, r.json()["student_id"]) == (200, other), r.text
    await assert_money_consistent(db)
