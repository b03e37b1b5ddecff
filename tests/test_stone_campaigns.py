"""Energy-stone campaigns (TCH-7): a booking with stones pays the price of the campaign in force
at booking time (the API's clock), before and after it the settings' price, in the
one-statement path and the step-by-step one and in the other paths that book (force-book); a
refund returns what was paid, whatever the price has become; overlapping campaigns of one
course type are refused by PostgreSQL, even for two concurrent creations.

covers: TCH-7, H5-1, FM-1
"""

import asyncio
import itertools
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from domain.channels import Actor, Channel
from domain.payment import Payment
from domain.rules import STONE_PRICES, BookingRules
from domain.words import Asset, CourseType
from store import classes
from store.db import Sessions
from tests.conftest import T0, Clock
from tests.helpers import (
    FIREMAN,
    as_,
    assert_money_consistent,
    balances,
    book,
    grant,
    open_slots,
    snapshot,
)
from tests.helpers import student as new_student
from tests.helpers import teacher as new_teacher

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
MARKETING = as_("marketing", "m-1")
SETTINGS_PRICE = STONE_PRICES[CourseType.major]
STONES = {"asset": "stones"}
KEYS = itertools.count()


async def campaign(
    api: httpx.AsyncClient,
    price: int,
    starts_at: datetime,
    ends_at: datetime,
    course_type: str = "major",
) -> httpx.Response:
    return await api.post(
        "/v1/stone-campaigns",
        json={
            "course_type": course_type,
            "price": price,
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
            "name": "spring",
        },
        headers=MARKETING,
    )


async def book_with_stones(
    api: httpx.AsyncClient, student_id: int, slot: int, *, step_by_step: bool
) -> dict[str, Any]:
    """Through the one-statement path, or (with an Idempotency-Key) the step-by-step one."""
    extra = {"Idempotency-Key": f"b-{next(KEYS)}"} if step_by_step else {}
    r = await api.post(
        "/v1/classes",
        json={
            "student_id": student_id,
            "timeslot_id": slot,
            "course_type": "major",
            "payment": STONES,
        },
        headers=as_("parent_h5", student_id, **extra),
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.mark.parametrize("step_by_step", [False, True], ids=["at_once", "step_by_step"])
async def test_the_price_is_the_campaigns_inside_its_window_only(
    api: httpx.AsyncClient, db: Sessions, clock: Clock, step_by_step: bool
) -> None:
    """Before the window, inside it (from its first instant) and after it (from its end,
    excluded)."""
    t = await new_teacher(api)
    s = await new_student(api)
    await grant(api, s, "stones", 1000)
    slots = await open_slots(api, t, *(T0 + 3 * DAY + i * HOUR for i in range(4)))
    assert (await campaign(api, 80, T0 + HOUR, T0 + DAY)).status_code == 201

    paid = []
    times = (T0, T0 + HOUR, T0 + DAY - timedelta(seconds=1), T0 + DAY)
    for at, slot in zip(times, slots, strict=True):
        clock.now = at
        paid.append(
            (await book_with_stones(api, s, slot, step_by_step=step_by_step))["payment_amount"]
        )
    assert paid == [SETTINGS_PRICE, 80, 80, SETTINGS_PRICE]
    assert (await balances(api, s))["stones"] == 1000 - sum(paid)
    await assert_money_consistent(db)


async def test_the_one_statement_itself_pays_the_campaign_price(
    api: httpx.AsyncClient, db: Sessions, clock: Clock
) -> None:
    """BOOK_AT_ONCE books (it does not leave it to the step-by-step path) at the campaign's
    price, and writes nothing when the balance covers the setting's price but not the
    campaign's."""
    t = await new_teacher(api)
    s = await new_student(api)
    await grant(api, s, "stones", 130)
    slots = await open_slots(api, t, T0 + DAY, T0 + 2 * DAY)
    assert (await campaign(api, 30, T0, T0 + HOUR)).status_code == 201
    assert (await campaign(api, 120, T0 + HOUR, T0 + DAY)).status_code == 201

    def at_once(slot: int) -> Any:
        return classes.book_class_at_once(
            db,
            student_id=s,
            timeslot_id=slot,
            course_type=CourseType.major,
            payment=Payment(asset=Asset.stones),
            lesson=None,
            actor=Actor(channel=Channel.lp, id="lp-1"),
            now=clock.now,
            rules=BookingRules(),
        )

    booked = await at_once(slots[0])
    assert booked is not None and booked["payment_amount"] == 30
    clock.advance(HOUR)
    before = await snapshot(db)
    assert await at_once(slots[1]) is None  # 100 left: enough for 100, not for 120
    assert await snapshot(db) == before
    r = await book(api, s, slots[1], payment=STONES)
    assert (r.status_code, r.json()["code"]) == (409, "insufficient_balance"), r.text
    assert r.json()["details"]["needed"] == 120
    await assert_money_consistent(db)


async def test_force_booking_pays_the_same_price(
    api: httpx.AsyncClient, db: Sessions, clock: Clock
) -> None:
    """FM-1 books through `ledger.charge_for`, priced by the same SQL as the booking route."""
    t = await new_teacher(api)
    s = await new_student(api)
    await grant(api, s, "stones", 1000)
    assert (await campaign(api, 70, T0, T0 + DAY)).status_code == 201
    r = await api.post(
        "/v1/classes/force-book",
        json={
            "student_id": s,
            "teacher_id": t,
            "start_at": (T0 + 2 * DAY).isoformat(),
            "course_type": "major",
            "payment": STONES,
            "reason": "ops",
        },
        headers=FIREMAN,
    )
    assert r.status_code == 201, r.text
    assert r.json()["payment_amount"] == 70
    await assert_money_consistent(db)


@pytest.mark.parametrize("step_by_step", [False, True], ids=["at_once", "step_by_step"])
async def test_a_refund_returns_what_was_paid_across_a_price_change(
    api: httpx.AsyncClient, db: Sessions, clock: Clock, step_by_step: bool
) -> None:
    """Booked at A; the campaign ends and B begins; the cancel refunds A, not B."""
    t = await new_teacher(api)
    s = await new_student(api)
    await grant(api, s, "stones", 500)
    [slot] = await open_slots(api, t, T0 + 3 * DAY)
    a = await campaign(api, 80, T0, T0 + 7 * DAY)
    assert a.status_code == 201, a.text
    booked = await book_with_stones(api, s, slot, step_by_step=step_by_step)
    assert booked["payment_amount"] == 80

    clock.advance(HOUR)
    ended = await api.post(f"/v1/stone-campaigns/{a.json()['id']}/end", headers=MARKETING)
    assert ended.status_code == 200, ended.text
    assert ended.json()["ends_at"] == clock.now.isoformat().replace("+00:00", "Z")
    assert (await campaign(api, 130, clock.now, T0 + 7 * DAY)).status_code == 201

    headers = as_("parent_h5", s, **({"Idempotency-Key": "c"} if step_by_step else {}))
    cancelled = await api.post(f"/v1/classes/{booked['id']}/cancel", json={}, headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["refunded"] is True
    assert (await balances(api, s))["stones"] == 500
    ledger = (await api.get(f"/v1/students/{s}/ledger", headers=FIREMAN)).json()
    assert sorted(e["delta"] for e in ledger if e["class_id"] == booked["id"]) == [-80, 80]
    rebooked = await book_with_stones(api, s, slot, step_by_step=step_by_step)
    assert rebooked["payment_amount"] == 130
    await assert_money_consistent(db)


async def test_overlapping_campaigns_are_refused(api: httpx.AsyncClient, db: Sessions) -> None:
    """One course type: a window that overlaps is 409, one that only touches is fine; another
    course type is independent."""
    first = await campaign(api, 80, T0 + DAY, T0 + 3 * DAY)
    assert first.status_code == 201, first.text
    before = await snapshot(db)
    for starts, ends in ((T0 + 2 * DAY, T0 + 4 * DAY), (T0, T0 + 2 * DAY), (T0, T0 + 9 * DAY)):
        r = await campaign(api, 90, starts, ends)
        assert (r.status_code, r.json()["code"]) == (409, "campaign_overlap"), r.text
        assert r.json()["details"]["campaign_id"] == first.json()["id"]
    assert await snapshot(db) == before
    assert (await campaign(api, 90, T0 + 3 * DAY, T0 + 4 * DAY)).status_code == 201
    assert (await campaign(api, 90, T0, T0 + DAY)).status_code == 201
    assert (await campaign(api, 90, T0 + DAY, T0 + 3 * DAY, "special")).status_code == 201

    listed = await api.get(
        "/v1/stone-campaigns",
        params={"course_type": "major", "in_force_at": (T0 + 2 * DAY).isoformat()},
        headers=as_("parent_h5", "1"),
    )
    assert listed.status_code == 200, listed.text
    assert [c["id"] for c in listed.json()] == [first.json()["id"]]


async def test_two_concurrent_overlapping_creations_cannot_both_win(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """Raced through the API, round after round: exactly one of each pair is created."""
    for round_ in range(8):
        start = T0 + round_ * 7 * DAY
        outcomes = await asyncio.gather(
            campaign(api, 80, start, start + 2 * DAY),
            campaign(api, 90, start + DAY, start + 3 * DAY),
        )
        codes = sorted(
            (r.status_code, r.json().get("code") if r.status_code != 201 else None)
            for r in outcomes
        )
        assert codes == [(201, None), (409, "campaign_overlap")], [r.text for r in outcomes]
    listed = (await api.get("/v1/stone-campaigns", headers=MARKETING)).json()
    assert len(listed) == 8


async def test_the_database_itself_refuses_an_overlap(db: Sessions) -> None:
    """Two transactions that both checked first and found nothing: the exclusion constraint
    makes the second to commit fail."""
    insert = text(
        "INSERT INTO stone_campaigns (course_type, price, starts_at, ends_at, channel, "
        "actor_id, created_at) VALUES ('major', :price, :starts, :ends, 'marketing', 'm', :now)"
    )
    async with db() as first, db() as second:
        await first.execute(insert, {"price": 80, "starts": T0, "ends": T0 + DAY, "now": T0})
        racing = asyncio.ensure_future(
            second.execute(
                insert, {"price": 90, "starts": T0 + HOUR, "ends": T0 + 2 * DAY, "now": T0}
            )
        )
        await asyncio.sleep(0.2)
        assert not racing.done()  # waits on the first's uncommitted row
        await first.commit()
        with pytest.raises(IntegrityError, match="ex_stone_campaigns_overlap"):
            await racing


async def test_ending_a_campaign(api: httpx.AsyncClient, clock: Clock) -> None:
    """Ended before it starts it never applies; ended twice is 409; an unknown one 404."""
    future = await campaign(api, 60, T0 + DAY, T0 + 2 * DAY)
    ended = await api.post(f"/v1/stone-campaigns/{future.json()['id']}/end", headers=MARKETING)
    assert ended.status_code == 200, ended.text
    assert ended.json()["ends_at"] == ended.json()["starts_at"]
    again = await api.post(f"/v1/stone-campaigns/{future.json()['id']}/end", headers=MARKETING)
    assert (again.status_code, again.json()["code"]) == (409, "campaign_over")
    # Its window is free again.
    assert (await campaign(api, 70, T0 + DAY, T0 + 2 * DAY)).status_code == 201
    missing = await api.post("/v1/stone-campaigns/999999/end", headers=MARKETING)
    assert (missing.status_code, missing.json()["code"]) == (404, "campaign_not_found")
    clock.advance(3 * DAY)
    past = (await api.get("/v1/stone-campaigns", headers=MARKETING)).json()[-1]
    over = await api.post(f"/v1/stone-campaigns/{past['id']}/end", headers=MARKETING)
    assert (over.status_code, over.json()["code"]) == (409, "campaign_over")


async def test_without_campaigns_the_settings_price_applies(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    t = await new_teacher(api)
    s = await new_student(api)
    await grant(api, s, "stones", 500)
    [slot] = await open_slots(api, t, T0 + DAY)
    r = await book(api, s, slot, payment=STONES)
    assert r.status_code == 201, r.text
    assert r.json()["payment_amount"] == SETTINGS_PRICE
    await assert_money_consistent(db)
