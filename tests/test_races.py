"""Races through the API: many requests at once, and PostgreSQL decides (ARCHITECTURE rule 1).
Every loser gets a clear 409, no slot is sold twice, no balance goes negative, and every
balance equals its ledger.

covers: PAR-1, PAR-3, H5-1, H5-5, TCH-1, TCH-2, FM-6, LP-2, LP-3, LP-8
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

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
    client_showing_500s,
    open_slots,
    student,
    teacher,
)
from yueke.settings import Settings

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@pytest.fixture
async def api(settings: Settings, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    """A lost race must be a clear 409, so a 500 is an answer to count, not an exception."""
    async with client_showing_500s(settings, clock) as client:
        yield client


def outcome(r: httpx.Response) -> tuple[int, str | None]:
    if r.status_code >= 500:
        return r.status_code, r.text[:80]
    return r.status_code, (r.json().get("code") if r.status_code >= 400 else None)


async def rows(db: Sessions, sql: str, **params: Any) -> list[Any]:
    async with db() as session:
        return list(await session.execute(text(sql), params))


async def live_classes_per_slot(db: Sessions) -> dict[int, int]:
    found = await rows(
        db,
        "select timeslot_id, count(*) from classes where state <> 'cancelled' group by timeslot_id",
    )
    return {slot: n for slot, n in found}


async def assert_no_negative_balance(db: Sessions) -> None:
    assert await rows(db, "select * from accounts where balance < 0") == []


async def test_sixty_students_race_for_ten_slots(api: httpx.AsyncClient, db: Sessions) -> None:
    teachers = [await teacher(api) for _ in range(5)]
    slots = [
        slot
        for t in teachers
        for slot in await open_slots(api, t, T0 + 2 * DAY, T0 + 2 * DAY + HOUR)
    ]
    assert len(slots) == 10
    students = list(await asyncio.gather(*(student(api, credits={"major": 2}) for _ in range(60))))
    # Six students for each slot, all at once, through different channels.
    channels = ["parent_h5", "parent_pc", "lp", "cc", "tmk"]
    answers = await asyncio.gather(
        *(
            book(api, s, slots[i % 10], channel=channels[i % len(channels)])
            for i, s in enumerate(students)
        )
    )
    counted = Counter(outcome(r) for r in answers)
    assert counted == {(201, None): 10, (409, "slot_already_booked"): 50}, counted
    winners = [r.json() for r in answers if r.status_code == 201]
    assert sorted(c["timeslot_id"] for c in winners) == sorted(slots)
    assert await live_classes_per_slot(db) == dict.fromkeys(slots, 1)
    # Every loser was told which slot it lost, and paid nothing.
    for i, r in enumerate(answers):
        if r.status_code == 409:
            assert r.json()["details"]["timeslot_id"] == slots[i % 10]
    paid = {c["student_id"] for c in winners}
    for s in students:
        expected = 1 if s in paid else 2
        assert (await balances(api, s))["credits"] == {"major": expected}, s
    slot_states = await rows(db, "select state, count(*) from timeslots group by state")
    assert dict(slot_states) == {"booked": 10}
    await assert_no_negative_balance(db)
    await assert_money_consistent(db)


async def test_one_student_races_ten_teachers_at_the_same_start(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    start = T0 + 2 * DAY
    slots = [(await open_slots(api, await teacher(api), start))[0] for _ in range(10)]
    s = await student(api, credits={"major": 10})
    answers = await asyncio.gather(*(book(api, s, slot) for slot in slots))
    counted = Counter(outcome(r) for r in answers)
    assert counted == {(201, None): 1, (409, "student_busy"): 9}, counted
    live = await rows(db, "select timeslot_id from classes where state = 'booked'")
    assert len(live) == 1
    # The nine other slots are open again for others.
    states = dict(await rows(db, "select state, count(*) from timeslots group by state"))
    assert states == {"booked": 1, "open": 9}
    assert (await balances(api, s))["credits"] == {"major": 9}
    await assert_money_consistent(db)


async def test_three_credits_buy_exactly_three_of_ten_concurrent_bookings(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    t = await teacher(api)
    slots = await open_slots(api, t, *(T0 + 2 * DAY + i * HOUR for i in range(10)))
    s = await student(api, credits={"major": 3})
    answers = await asyncio.gather(*(book(api, s, slot) for slot in slots))
    counted = Counter(outcome(r) for r in answers)
    assert counted == {(201, None): 3, (409, "insufficient_balance"): 7}, counted
    assert (await balances(api, s))["credits"] == {"major": 0}
    booked = await rows(db, "select count(*) from classes where state = 'booked'")
    assert booked == [(3,)]
    debits = await rows(db, "select count(*) from ledger_entries where reason = 'booking'")
    assert debits == [(1 * 3,)]
    await assert_no_negative_balance(db)
    await assert_money_consistent(db)


async def test_stones_never_go_negative_under_a_race(api: httpx.AsyncClient, db: Sessions) -> None:
    """250 stones, ten concurrent major bookings at 100 each: two win."""
    t = await teacher(api)
    slots = await open_slots(api, t, *(T0 + 2 * DAY + i * HOUR for i in range(10)))
    s = await student(api)
    r = await api.post(
        f"/v1/students/{s}/grants", json={"asset": "stones", "amount": 250}, headers=CC
    )
    assert r.status_code == 201
    answers = await asyncio.gather(
        *(book(api, s, slot, payment={"asset": "stones"}) for slot in slots)
    )
    counted = Counter(outcome(r) for r in answers)
    assert counted == {(201, None): 2, (409, "insufficient_balance"): 8}, counted
    assert (await balances(api, s))["stones"] == 50
    await assert_no_negative_balance(db)
    await assert_money_consistent(db)


async def test_one_coupon_raced_ten_times_is_used_once(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    t = await teacher(api)
    slots = await open_slots(api, t, *(T0 + 2 * DAY + i * HOUR for i in range(10)))
    s = await student(api)
    coupon = await api.post(
        f"/v1/students/{s}/coupons",
        json={"course_type": "major", "expires_at": (T0 + 9 * DAY).isoformat()},
        headers=CC,
    )
    pay = {"asset": "coupon", "coupon_id": coupon.json()["id"]}
    answers = await asyncio.gather(*(book(api, s, slot, payment=pay) for slot in slots))
    counted = Counter(outcome(r) for r in answers)
    assert counted == {(201, None): 1, (409, "coupon_used"): 9}, counted
    assert (await balances(api, s))["coupons"][0]["usable"] is False
    await assert_no_negative_balance(db)
    await assert_money_consistent(db)


async def test_ten_concurrent_cancels_refund_once(api: httpx.AsyncClient, db: Sessions) -> None:
    t = await teacher(api)
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    s = await student(api, credits={"major": 1})
    booked = await book(api, s, slot)
    class_id = booked.json()["id"]
    who = [as_("parent_h5", s), as_("parent_pc", s), LP, FIREMAN, as_("cc")]
    answers = await asyncio.gather(
        *(
            api.post(f"/v1/classes/{class_id}/cancel", json={}, headers=who[i % len(who)])
            for i in range(10)
        )
    )
    counted = Counter(outcome(r) for r in answers)
    assert counted == {(200, None): 1, (409, "class_not_cancellable"): 9}, counted
    refunds = await rows(
        db,
        "select count(*) from ledger_entries where reason = 'refund' and class_id = :c",
        c=class_id,
    )
    assert refunds == [(1,)]
    assert (await balances(api, s))["credits"] == {"major": 1}
    freed = await rows(
        db,
        "select count(*) from audit_events where entity = 'class' and action = 'cancelled'",
    )
    assert freed == [(1,)]
    assert await rows(db, "select state from timeslots where id = :i", i=slot) == [("open",)]
    await assert_money_consistent(db)


async def test_cancel_and_rebook_race(api: httpx.AsyncClient, db: Sessions) -> None:
    """While the owner cancels, others try to book the slot: at most one live class, and
    whoever books pays exactly once."""
    t = await teacher(api)
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    owner = await student(api, credits={"major": 1})
    others = list(await asyncio.gather(*(student(api, credits={"major": 1}) for _ in range(9))))
    class_id = (await book(api, owner, slot)).json()["id"]
    cancel = api.post(f"/v1/classes/{class_id}/cancel", json={}, headers=as_("parent_h5", owner))
    answers = await asyncio.gather(cancel, *(book(api, o, slot) for o in others))
    assert answers[0].status_code == 200, answers[0].text
    for r in answers[1:]:
        assert outcome(r) in ((201, None), (409, "slot_already_booked")), r.text
    assert sum(r.status_code == 201 for r in answers[1:]) <= 1
    assert all(n <= 1 for n in (await live_classes_per_slot(db)).values())
    await assert_money_consistent(db)


async def test_concurrent_opening_of_the_same_start_makes_one_slot(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    t = await teacher(api)
    body = {"start_at": [(T0 + 2 * DAY).isoformat(), (T0 + 3 * DAY).isoformat()]}
    answers = await asyncio.gather(
        *(
            api.post(
                f"/v1/teachers/{t}/timeslots",
                json=body,
                headers=as_("teacher", t) if i % 2 else FIREMAN,
            )
            for i in range(10)
        )
    )
    assert [r.status_code for r in answers] == [201] * 10, [r.text for r in answers]
    opened = [x["id"] for r in answers for x in r.json()["opened"]]
    skipped = [x for r in answers for x in r.json()["skipped"]]
    assert (len(opened), len(skipped)) == (2, 18)
    live = await rows(db, "select count(*) from timeslots where state <> 'removed'")
    assert live == [(2,)]


async def test_close_and_book_race_one_outcome_per_slot(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """The teacher closes slots while students book them: each slot ends either closed (and
    the booking was refused) or booked (and the closing was refused), never both."""
    t = await teacher(api)
    slots = await open_slots(api, t, *(T0 + 2 * DAY + i * HOUR for i in range(10)))
    students = list(await asyncio.gather(*(student(api, credits={"major": 1}) for _ in slots)))
    closes = [
        api.post(
            f"/v1/teachers/{t}/timeslots/close",
            json={"timeslot_ids": [slot]},
            headers=as_("teacher", t),
        )
        for slot in slots
    ]
    books = [book(api, s, slot) for s, slot in zip(students, slots, strict=True)]
    mixed = [call for pair in zip(closes, books, strict=True) for call in pair]
    answers = await asyncio.gather(*mixed)
    states = dict(await rows(db, "select id, state from timeslots"))
    for i, slot in enumerate(slots):
        closed, booked = answers[2 * i], answers[2 * i + 1]
        if states[slot] == "removed":
            assert closed.status_code == 200, closed.text
            assert outcome(booked) == (409, "slot_not_open"), booked.text
        else:
            assert states[slot] == "booked"
            assert booked.status_code == 201, booked.text
            assert outcome(closed) == (409, "slot_already_booked"), closed.text
    await assert_money_consistent(db)


async def test_batches_racing_for_overlapping_slots(api: httpx.AsyncClient, db: Sessions) -> None:
    """LP-8 batches are all or nothing even when they race: no batch ends half booked."""
    t = await teacher(api)
    slots = await open_slots(api, t, *(T0 + 2 * DAY + i * HOUR for i in range(6)))
    students = list(await asyncio.gather(*(student(api, credits={"major": 5}) for _ in range(8))))
    # Overlapping windows of three slots: [0,1,2], [1,2,3], ... wrapping around.
    batches = [[slots[(i + k) % 6] for k in range(3)] for i in range(8)]
    answers = await asyncio.gather(
        *(
            api.post(
                "/v1/classes/batch",
                json={"student_id": s, "timeslot_ids": ids, "course_type": "major"},
                headers=LP,
            )
            for s, ids in zip(students, batches, strict=True)
        )
    )
    for r in answers:
        assert outcome(r) in ((201, None), (409, "slot_already_booked")), r.text
    won = [r.json()["classes"] for r in answers if r.status_code == 201]
    assert won, "some batch must win"
    taken = [c["timeslot_id"] for classes in won for c in classes]
    assert len(taken) == len(set(taken)) == 3 * len(won)
    for s, r in zip(students, answers, strict=True):
        expected = 2 if r.status_code == 201 else 5
        assert (await balances(api, s))["credits"] == {"major": expected}
    assert all(n == 1 for n in (await live_classes_per_slot(db)).values())
    await assert_money_consistent(db)
