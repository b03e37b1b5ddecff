"""Open classes through the API: made on a teacher's slot, listed, edited while empty, seats up
to the capacity whatever the concurrency, cancelled with the 24 h rule, replays bought once (free
for attendees); balances always equal the ledger, and every change leaves an audit row.

covers: CUR-2, CLS-1, PAR-2, H5-2, PAR-3, H5-5
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from store.db import Sessions
from tests.conftest import T0, Clock
from tests.helpers import (
    CC,
    LP,
    as_,
    assert_money_consistent,
    balances,
    book,
    client_showing_500s,
    grant,
    open_slots,
    snapshot,
    student,
    teacher,
)
from yueke.settings import Settings, dev_channel_keys

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
CURRICULUM = as_("curriculum", "cur-1")
CLASSROOM = as_("classroom", "room-1")
START = T0 + 3 * DAY


@pytest.fixture
def settings(database_url: str) -> Settings:
    """200 requests at once queue for 40 pooled connections: on a busy machine the wait may
    pass the default 5 s, and this test is about seats, not the pool."""
    return Settings(
        database_url=database_url,
        channel_keys=dev_channel_keys(),
        db_pool_size=20,
        db_pool_timeout=60,
    )


@pytest.fixture
async def api(settings: Settings, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    """A lost race must be a clear 409, so a 500 is an answer to count, not an exception."""
    async with client_showing_500s(settings, clock) as client:
        yield client


def parent(student_id: int, channel: str = "parent_h5") -> dict[str, str]:
    return as_(channel, student_id)


def code(r: httpx.Response) -> tuple[int, str | None]:
    if r.status_code >= 500:
        return r.status_code, r.text[:80]
    return r.status_code, (r.json().get("code") if r.status_code >= 400 else None)


async def open_class(
    api: httpx.AsyncClient,
    *,
    capacity: int = 20,
    start: datetime = START,
    listed: bool = True,
    headers: dict[str, str] = CURRICULUM,
) -> dict[str, Any]:
    t = await teacher(api)
    [slot] = await open_slots(api, t, start)
    r = await api.post(
        "/v1/open-classes",
        json={
            "timeslot_id": slot,
            "title": "Animals",
            "description": "Zoo words",
            "capacity": capacity,
        },
        headers=headers,
    )
    assert r.status_code == 201, r.text
    made = dict(r.json())
    assert (made["listed"], made["seats_left"], made["teacher_id"]) == (False, capacity, t)
    if listed:
        r = await api.post(f"/v1/open-classes/{made['id']}/list", headers=headers)
        assert r.status_code == 200, r.text
        made = dict(r.json())
    return made


async def seat(
    api: httpx.AsyncClient, open_class_id: int, student_id: int, **body: Any
) -> httpx.Response:
    return await api.post(
        f"/v1/open-classes/{open_class_id}/seats",
        json={"student_id": student_id, **body},
        headers=parent(student_id),
    )


async def audit_actions(db: Sessions, open_class_id: int) -> list[str]:
    async with db() as session:
        rows = await session.execute(
            text(
                "select action from audit_events where entity = 'open_class' "
                "and entity_id = :id order by id"
            ),
            {"id": open_class_id},
        )
        return [r[0] for r in rows]


async def test_200_students_race_for_20_seats(api: httpx.AsyncClient, db: Sessions) -> None:
    """covers: PAR-2, H5-2 — exactly the capacity is sold, every loser gets the same 409, and
    each balance equals its ledger."""
    oc = await open_class(api, capacity=20)
    students = [await student(api, credits={"open": 1}) for _ in range(200)]
    answers = await asyncio.gather(*(seat(api, oc["id"], s) for s in students))
    outcomes = Counter(code(r) for r in answers)
    assert outcomes == {(201, None): 20, (409, "open_class_full"): 180}, outcomes
    r = await api.get(f"/v1/open-classes/{oc['id']}", headers=CC)
    assert (r.json()["seats_taken"], r.json()["seats_left"]) == (20, 0)
    winners = {r.json()["student_id"] for r in answers if r.status_code == 201}
    for s in students:
        left = (await balances(api, s))["credits"].get("open")
        assert left == (0 if s in winners else 1), (s, left)
    async with db() as session:
        live = await session.scalar(
            text("select count(*) from classes where open_class_id = :id and state = 'booked'"),
            {"id": oc["id"]},
        )
    assert live == 20
    await assert_money_consistent(db)


async def test_listing_rules(api: httpx.AsyncClient, db: Sessions, clock: Clock) -> None:
    """covers: CUR-2, CLS-1, PAR-2 — parents see and book only listed classes not yet started:
    to a parent a class not listed is 404 as an unknown one, so its seat booking does not tell
    that it exists; staff see every class, and a seat in a delisted one is 409
    open_class_not_listed."""
    s = await student(api, credits={"open": 3})
    hidden = await open_class(api, listed=False, headers=CLASSROOM)
    shown = await open_class(api, start=START + HOUR)
    r = await api.get("/v1/open-classes", headers=parent(s, "parent_pc"))
    assert [c["id"] for c in r.json()] == [shown["id"]]
    assert r.json()[0]["seats_left"] == 20
    assert code(await api.get(f"/v1/open-classes/{hidden['id']}", headers=parent(s))) == (
        404,
        "open_class_not_found",
    )
    unknown = await seat(api, 424242, s)
    assert code(unknown) == (404, "open_class_not_found"), unknown.text
    r = await seat(api, hidden["id"], s)
    assert code(r) == (404, "open_class_not_found"), r.text
    assert r.text == unknown.text.replace("424242", str(hidden["id"]))
    r = await api.post(
        f"/v1/open-classes/{hidden['id']}/seats", json={"student_id": s}, headers=CLASSROOM
    )
    assert code(r) == (409, "open_class_not_listed"), r.text
    staff = await api.get("/v1/open-classes", headers=CURRICULUM)
    assert [c["id"] for c in staff.json()] == [hidden["id"], shown["id"]]
    delisted = await api.get("/v1/open-classes", params={"listed": "false"}, headers=CC)
    assert [c["id"] for c in delisted.json()] == [hidden["id"]]

    assert code(await seat(api, shown["id"], s)) == (201, None)
    r = await api.post(f"/v1/open-classes/{shown['id']}/delist", headers=CURRICULUM)
    assert (r.status_code, r.json()["listed"], r.json()["seats_taken"]) == (200, False, 1)
    other = await student(api, credits={"open": 1})
    assert code(await seat(api, shown["id"], other)) == (404, "open_class_not_found")
    assert (await api.get("/v1/open-classes", headers=parent(s))).json() == []
    r = await api.post(f"/v1/open-classes/{shown['id']}/list", headers=CLASSROOM)
    assert r.json()["seats_left"] == 19

    clock.now = START + HOUR
    assert (await api.get("/v1/open-classes", headers=parent(s))).json() == []
    assert code(await api.post(f"/v1/open-classes/{shown['id']}/delist", headers=CURRICULUM)) == (
        409,
        "class_started",
    )
    assert code(await seat(api, hidden["id"], other)) == (404, "open_class_not_found")
    assert await audit_actions(db, shown["id"]) == [
        "created",
        "listed",
        "seat_taken",
        "delisted",
        "listed",
    ]


async def test_seat_booking_window_and_payment(api: httpx.AsyncClient, clock: Clock) -> None:
    """covers: H5-2, PAR-2 — credit or a coupon of course type open; stones refused; at least
    1 h ahead."""
    oc = await open_class(api)
    s = await student(api)
    await grant(api, s, "stones", 500)
    assert code(await seat(api, oc["id"], s, payment={"asset": "stones"})) == (
        422,
        "payment_not_accepted",
    )
    assert code(await seat(api, oc["id"], s)) == (409, "insufficient_balance")
    r = await api.post(
        f"/v1/students/{s}/coupons",
        json={"course_type": "open", "expires_at": (T0 + 10 * DAY).isoformat()},
        headers=as_("marketing"),
    )
    coupon = r.json()["id"]
    r = await seat(api, oc["id"], s, payment={"asset": "coupon", "coupon_id": coupon})
    assert (r.status_code, r.json()["payment_asset"], r.json()["open_class_id"]) == (
        201,
        "coupon",
        oc["id"],
    ), r.text
    assert r.json()["timeslot_id"] is None and r.json()["course_type"] == "open"
    late = await student(api, credits={"open": 1})
    clock.now = START - HOUR + timedelta(seconds=1)
    assert code(await seat(api, oc["id"], late)) == (422, "outside_booking_window")
    clock.now = START
    assert code(await seat(api, oc["id"], late)) == (409, "class_started")


async def test_creation_needs_a_free_teacher(api: httpx.AsyncClient) -> None:
    """covers: CUR-2, CLS-1 — the slot must be the teacher's open general slot; it then belongs
    to the open class: nobody books it alone and the teacher cannot close it."""
    oc = await open_class(api)
    body = {"timeslot_id": oc["timeslot_id"], "title": "Again", "capacity": 5}
    r = await api.post("/v1/open-classes", json=body, headers=CURRICULUM)
    assert code(r) == (409, "slot_already_booked")
    s = await student(api, credits={"major": 1})
    assert code(await book(api, s, oc["timeslot_id"])) == (409, "slot_already_booked")
    r = await api.post(
        f"/v1/teachers/{oc['teacher_id']}/timeslots/close",
        json={"timeslot_ids": [oc["timeslot_id"]]},
        headers=as_("teacher", oc["teacher_id"]),
    )
    assert r.status_code == 409, r.text


async def test_one_seat_per_student_and_no_other_class_then(api: httpx.AsyncClient) -> None:
    """covers: PAR-2, H5-2, PAR-1 — a second seat is already_seated; a class elsewhere at that
    start is student_busy, whichever is booked first."""
    oc = await open_class(api)
    s = await student(api, credits={"open": 5, "major": 5})
    assert code(await seat(api, oc["id"], s)) == (201, None)
    assert code(await seat(api, oc["id"], s)) == (409, "already_seated")
    t = await teacher(api)
    [same_time, later] = await open_slots(api, t, START, START + HOUR)
    assert code(await book(api, s, same_time)) == (409, "student_busy")
    other = await open_class(api, start=START + HOUR)
    assert code(await book(api, s, later)) == (201, None)
    assert code(await seat(api, other["id"], s)) == (409, "student_busy")
    assert (await balances(api, s))["credits"] == {"open": 4, "major": 4}


async def test_edit_only_while_empty(api: httpx.AsyncClient, db: Sessions, clock: Clock) -> None:
    """covers: CUR-2, CLS-1 — anything while no seat is taken; then only a larger capacity."""
    oc = await open_class(api, capacity=3)
    url = f"/v1/open-classes/{oc['id']}"
    r = await api.patch(url, json={"title": "Farm", "capacity": 2}, headers=CURRICULUM)
    assert (r.status_code, r.json()["title"], r.json()["capacity"]) == (200, "Farm", 2), r.text
    s = await student(api, credits={"open": 1})
    assert code(await seat(api, oc["id"], s)) == (201, None)
    for body in (
        {"title": "Zoo"},
        {"description": "x"},
        {"capacity": 1},
        {"title": "Farm", "capacity": 9},
    ):
        assert code(await api.patch(url, json=body, headers=CLASSROOM)) == (
            409,
            "open_class_has_seats",
        ), body
    r = await api.patch(url, json={"capacity": 2}, headers=CLASSROOM)
    assert (r.status_code, r.json()["capacity"]) == (200, 2)
    r = await api.patch(url, json={"capacity": 40}, headers=CLASSROOM)
    assert (r.status_code, r.json()["seats_left"]) == (200, 39)
    clock.now = START
    assert code(await api.patch(url, json={"capacity": 50}, headers=CURRICULUM)) == (
        409,
        "class_started",
    )
    assert await audit_actions(db, oc["id"]) == [
        "created",
        "listed",
        "edited",
        "seat_taken",
        "edited",
        "edited",
    ]


async def test_cancel_24h_rule_frees_the_seat(
    api: httpx.AsyncClient, db: Sessions, clock: Clock
) -> None:
    """covers: PAR-3, H5-5 — a seat is cancelled as any class: refunded at least 24 h ahead,
    not later; either way the seat is free again."""
    oc = await open_class(api, capacity=1)
    early, late, third = [await student(api, credits={"open": 1}) for _ in range(3)]
    booked = (await seat(api, oc["id"], early)).json()
    assert code(await seat(api, oc["id"], late)) == (409, "open_class_full")
    r = await api.post(f"/v1/classes/{booked['id']}/cancel", json={}, headers=parent(early))
    assert (r.status_code, r.json()["refunded"]) == (200, True), r.text
    assert (await balances(api, early))["credits"]["open"] == 1
    booked = (await seat(api, oc["id"], late)).json()
    clock.now = START - 23 * HOUR
    r = await api.post(
        f"/v1/classes/{booked['id']}/cancel", json={}, headers=parent(late, "parent_pc")
    )
    assert (r.status_code, r.json()["refunded"]) == (200, False), r.text
    assert (await balances(api, late))["credits"]["open"] == 0
    assert code(await seat(api, oc["id"], third)) == (201, None)
    r = await api.get(f"/v1/open-classes/{oc['id']}", headers=CC)
    assert r.json()["seats_taken"] == 1
    await assert_money_consistent(db)


async def test_replay_rules(api: httpx.AsyncClient, db: Sessions, clock: Clock) -> None:
    """covers: PAR-2, CUR-2 — not before the class is over; not before it has a price (but free
    for an attendee); once per student; paid in stones or credits."""
    oc = await open_class(api)
    attendee, buyer, cancelled = [await student(api, credits={"open": 2}) for _ in range(3)]
    await grant(api, buyer, "stones", 50)
    await seat(api, oc["id"], attendee)
    gone = (await seat(api, oc["id"], cancelled)).json()
    await api.post(f"/v1/classes/{gone['id']}/cancel", json={}, headers=parent(cancelled))
    url = f"/v1/open-classes/{oc['id']}/replays"

    async def buy(s: int) -> httpx.Response:
        return await api.post(url, json={"student_id": s}, headers=parent(s, "parent_pc"))

    clock.now = START + 29 * timedelta(minutes=1)
    assert code(await buy(attendee)) == (409, "open_class_not_over")
    clock.now = START + 30 * timedelta(minutes=1)
    assert code(await buy(buyer)) == (409, "replay_not_for_sale")
    r = await buy(attendee)
    assert (r.status_code, r.json()["attended"], r.json()["payment_amount"]) == (201, True, 0)
    r = await api.put(
        f"/v1/open-classes/{oc['id']}/replay-price",
        json={"asset": "stones", "amount": 30},
        headers=CURRICULUM,
    )
    assert r.json()["replay_price"] == {"asset": "stones", "amount": 30}, r.text
    r = await buy(buyer)
    assert (r.status_code, r.json()["payment_asset"], r.json()["payment_amount"]) == (
        201,
        "stones",
        30,
    )
    assert (await balances(api, buyer))["stones"] == 20
    assert code(await buy(buyer)) == (409, "replay_already_bought")
    assert code(await buy(attendee)) == (409, "replay_already_bought")
    await api.put(
        f"/v1/open-classes/{oc['id']}/replay-price",
        json={"asset": "credit", "amount": 2},
        headers=CLASSROOM,
    )
    r = await buy(cancelled)
    assert (r.status_code, r.json()["attended"], r.json()["payment_asset"]) == (
        201,
        False,
        "credit",
    )
    assert (await balances(api, cancelled))["credits"]["open"] == 0
    r = await api.get(f"/v1/students/{buyer}/replays", headers=parent(buyer))
    assert [(x["open_class_id"], x["title"]) for x in r.json()] == [(oc["id"], "Animals")]
    assert code(await api.get(f"/v1/students/{buyer}/replays", headers=parent(attendee))) == (
        403,
        "forbidden_actor",
    )
    actions = await audit_actions(db, oc["id"])
    assert actions.count("replay_bought") == 3 and actions.count("replay_priced") == 2
    await assert_money_consistent(db)


async def test_a_teacher_cannot_cancel_one_seat(api: httpx.AsyncClient, db: Sessions) -> None:
    """covers: TCH-5 — a teacher's cancel refunds a 1-on-1 class and offers its student other
    times; a seat of the teacher's open class is not one: 409 open_class_seat, nothing changed."""
    oc = await open_class(api)
    s = await student(api, credits={"open": 1})
    booked = (await seat(api, oc["id"], s)).json()
    before = await snapshot(db)
    r = await api.post(
        f"/v1/classes/{booked['id']}/teacher-cancel",
        json={"offered_start_at": [], "reason": "ill"},
        headers=as_("teacher", oc["teacher_id"]),
    )
    assert code(r) == (409, "open_class_seat"), r.text
    assert await snapshot(db) == before


async def test_a_seat_does_not_change_student(api: httpx.AsyncClient, db: Sessions) -> None:
    """covers: TMK-5, CC-5 — a change of student takes a 1-on-1 class; a seat is taken under the
    seat rules (listing, credits), so it is refused: 409 open_class_seat, nothing changed."""
    oc = await open_class(api)
    s = await student(api, credits={"open": 1})
    other = await student(api)
    await grant(api, other, "stones", 100)
    booked = (await seat(api, oc["id"], s)).json()
    before = await snapshot(db)
    r = await api.post(
        f"/v1/classes/{booked['id']}/change-student",
        json={"student_id": other, "payment": {"asset": "stones"}},
        headers=CC,
    )
    assert code(r) == (409, "open_class_seat"), r.text
    assert await snapshot(db) == before


async def test_an_open_class_is_not_booked_one_on_one(api: httpx.AsyncClient, db: Sessions) -> None:
    """covers: PAR-2, H5-2 — course type open on the 1-on-1 booking routes, in one statement,
    step by step (with an Idempotency-Key) and in a batch: 422 open_class_by_seat, which names
    the seats route, and nothing changed."""
    t = await teacher(api, course_types=("major", "open"))
    s = await student(api, credits={"open": 2})
    [slot] = await open_slots(api, t, START)
    body = {"student_id": s, "timeslot_id": slot, "course_type": "open"}
    before = await snapshot(db)
    for headers in (parent(s), {**parent(s), "Idempotency-Key": "open-1-on-1"}):
        r = await api.post("/v1/classes", json=body, headers=headers)
        assert code(r) == (422, "open_class_by_seat"), r.text
        assert "/v1/open-classes/" in r.json()["details"]["seats"]
    r = await api.post(
        "/v1/classes/batch",
        json={"student_id": s, "timeslot_ids": [slot], "course_type": "open"},
        headers=LP,
    )
    assert code(r) == (422, "open_class_by_seat"), r.text
    assert await snapshot(db) == before
