"""The one-statement booking (store.classes.BOOK_AT_ONCE) books every booking the step-by-step
path would, so the fast path is the path a plain booking takes; and it refuses, writing nothing,
wherever the step-by-step path refuses (the route then answers with that path's code).

covers: PAR-1, H5-1, H5-3, H5-4, LP-2, INT-1
"""

from datetime import timedelta
from typing import Any

import httpx
import pytest

from domain.channels import Actor, Channel
from domain.payment import Payment
from domain.rules import BookingRules
from domain.words import Asset, CourseType
from store import classes
from store.db import Sessions
from tests.conftest import T0, Clock
from tests.helpers import CC, LP, as_, assert_money_consistent, book, grant, open_slots, snapshot
from tests.helpers import student as new_student
from tests.helpers import teacher as new_teacher

DAY = timedelta(days=1)
RULES = BookingRules()
ACTOR = Actor(channel=Channel.lp, id="lp-1")


async def at_once(
    db: Sessions,
    clock: Clock,
    student_id: int,
    timeslot_id: int,
    course_type: str = "major",
    payment: Payment | None = None,
) -> dict[str, Any] | None:
    return await classes.book_class_at_once(
        db,
        student_id=student_id,
        timeslot_id=timeslot_id,
        course_type=CourseType(course_type),
        payment=payment or Payment(),
        lesson=None,
        actor=ACTOR,
        now=clock.now,
        rules=RULES,
    )


async def coupon_of(api: httpx.AsyncClient, student_id: int, course_type: str = "major") -> int:
    r = await api.post(
        f"/v1/students/{student_id}/coupons",
        json={"course_type": course_type, "expires_at": (T0 + 30 * DAY).isoformat()},
        headers=as_("marketing", "m-1"),
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_it_books_with_credit_stones_and_a_coupon(
    api: httpx.AsyncClient, db: Sessions, clock: Clock
) -> None:
    t = await new_teacher(api, course_types=("major", "l7_major"))
    s = await new_student(api, credits={"major": 1})
    l7 = await new_student(api, credits={"l7_major": 1}, level=7)
    await grant(api, s, "stones", 100)
    coupon = await coupon_of(api, s)
    slots = await open_slots(api, t, T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY, T0 + 4 * DAY)

    by_credit = await at_once(db, clock, s, slots[0])
    by_stones = await at_once(db, clock, s, slots[1], payment=Payment(asset=Asset.stones))
    by_coupon = await at_once(
        db, clock, s, slots[2], payment=Payment(asset=Asset.coupon, coupon_id=coupon)
    )
    l7_major = await at_once(db, clock, l7, slots[3], course_type="l7_major")
    assert by_credit is not None and by_credit["payment_asset"] == "credit"
    assert by_stones is not None and by_stones["payment_amount"] == 100
    assert by_coupon is not None and by_coupon["payment_key"] == str(coupon)
    assert l7_major is not None and l7_major["state"] == "booked"
    balances = (await api.get(f"/v1/students/{s}/balances", headers=CC)).json()
    assert balances["credits"] == {"major": 0} and balances["stones"] == 0
    trail = (await api.get(f"/v1/classes/{by_credit['id']}/audit", headers=as_("fireman"))).json()
    assert [e["action"] for e in trail] == ["booked"]
    await assert_money_consistent(db)


async def test_it_books_a_chinese_teachers_advanced_class(
    api: httpx.AsyncClient, db: Sessions, clock: Clock
) -> None:
    """CUR-1's Chinese half: all-round advanced is what a Chinese teacher teaches."""
    t = await new_teacher(api, kind="chinese", course_types=("advanced",))
    s = await new_student(api, credits={"advanced": 1})
    [slot] = await open_slots(api, t, T0 + DAY)
    assert await at_once(db, clock, s, slot, course_type="advanced") is not None


@pytest.mark.parametrize(
    ("situation", "code"),
    [
        ("slot_booked", "slot_already_booked"),
        ("no_credit", "insufficient_balance"),
        ("too_soon", "outside_booking_window"),
        ("too_far", "outside_booking_window"),
        ("not_taught", "course_type_not_taught"),
        ("chinese_major", "course_type_not_for_chinese_teacher"),
        ("level_1_l7", "l7_students_only"),
        ("student_busy", "student_busy"),
        ("coupon_of_another", "coupon_not_found"),
        ("product_slot", "slot_for_product"),
    ],
)
async def test_it_writes_nothing_where_the_step_by_step_path_refuses(
    api: httpx.AsyncClient, db: Sessions, clock: Clock, situation: str, code: str
) -> None:
    foreign = await new_teacher(api, course_types=("major",))
    chinese = await new_teacher(api, kind="chinese", course_types=("advanced",))
    s = await new_student(api, credits={"major": 3, "l7_major": 1})
    other = await new_student(api, credits={"major": 1})
    start = T0 + DAY
    [slot] = await open_slots(api, foreign, start)
    [chinese_slot] = await open_slots(api, chinese, start)
    payment, course_type, target = Payment(), "major", slot
    if situation == "slot_booked":
        assert (await book(api, other, slot)).status_code == 201
    elif situation == "no_credit":
        s = await new_student(api)
    elif situation == "too_soon":
        clock.advance(DAY - timedelta(minutes=30))
    elif situation == "too_far":
        clock.advance(-5 * 7 * DAY)
    elif situation == "not_taught":
        course_type = "l7_major"
        s = await new_student(api, credits={"l7_major": 1}, level=7)
    elif situation == "chinese_major":
        target = chinese_slot
    elif situation == "level_1_l7":
        course_type = "l7_major"
    elif situation == "student_busy":
        [other_teachers_slot] = await open_slots(
            api, await new_teacher(api, course_types=("major",)), start
        )
        assert (await book(api, s, other_teachers_slot)).status_code == 201
    elif situation == "coupon_of_another":
        payment = Payment(asset=Asset.coupon, coupon_id=await coupon_of(api, other))
    elif situation == "product_slot":
        r = await api.post(
            f"/v1/teachers/{foreign}/timeslots/reserve-for-product",
            json={"product": "dual_teacher", "timeslot_ids": [slot]},
            headers=as_("intl"),
        )
        assert r.status_code == 200, r.text

    before = await snapshot(db)
    assert await at_once(db, clock, s, target, course_type, payment) is None
    assert await snapshot(db) == before
    refused = await api.post(
        "/v1/classes",
        json={
            "student_id": s,
            "timeslot_id": target,
            "course_type": course_type,
            "payment": payment.model_dump(exclude_none=True),
        },
        headers=LP,
    )
    assert (refused.status_code // 100, refused.json()["code"]) == (4, code), refused.text
    assert await snapshot(db) == before
    await assert_money_consistent(db)


async def cancel_at_once(
    db: Sessions, clock: Clock, class_id: int, owner: int | None = None
) -> dict[str, Any] | None:
    return await classes.cancel_class_at_once(
        db, class_id=class_id, owner=owner, reason="ill", actor=ACTOR, now=clock.now, rules=RULES
    )


async def test_it_cancels_early_with_a_refund_and_late_without(
    api: httpx.AsyncClient, db: Sessions, clock: Clock
) -> None:
    """PAR-3, H5-5, LP-3: one statement cancels; at least 24 h ahead it refunds, later not; the
    slot opens again either way; a parent cancels only their own student's class."""
    t = await new_teacher(api)
    s = await new_student(api, credits={"major": 2})
    [early_slot] = await open_slots(api, t, T0 + 2 * DAY)
    [late_slot] = await open_slots(api, t, T0 + DAY + timedelta(minutes=30))
    early, late = [(await book(api, s, slot)).json()["id"] for slot in (early_slot, late_slot)]

    assert await cancel_at_once(db, clock, early, owner=s + 1) is None  # another parent's
    cancelled = await cancel_at_once(db, clock, early, owner=s)
    assert cancelled is not None and cancelled["refunded"] is True
    clock.advance(timedelta(hours=1))
    cancelled_late = await cancel_at_once(db, clock, late)
    assert cancelled_late is not None and cancelled_late["refunded"] is False
    assert await cancel_at_once(db, clock, late) is None  # already cancelled

    assert (await api.get(f"/v1/students/{s}/balances", headers=CC)).json()["credits"] == {
        "major": 1
    }
    again = await at_once(db, clock, s, early_slot)
    assert again is not None  # the freed slot is open again
    trail = (await api.get(f"/v1/classes/{early}/audit", headers=as_("fireman"))).json()
    assert [e["action"] for e in trail] == ["booked", "cancelled"]
    await assert_money_consistent(db)
