"""The event feed: every change writes one row in its own transaction; the feed reads them in
an order a cursor never skips, and each channel sees only what is its business.

The race: a slow transaction that took the lower id commits after a faster one; a reader polling
in between still gets both, in order, exactly once.
"""

import asyncio
import random
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text

from domain.channels import Actor, Channel
from domain.events import TYPES
from store import audit
from store.db import Sessions
from tests.conftest import T0
from tests.helpers import CC, FIREMAN, as_, book, open_slots, student, teacher

DAY = timedelta(days=1)


async def feed(
    api: httpx.AsyncClient, headers: dict[str, str], after: str | None = None, **params: Any
) -> tuple[list[dict[str, Any]], str | None]:
    query = {**params, **({"after": after} if after is not None else {})}
    r = await api.get("/v1/events", params=query, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    return body["events"], body["next_cursor"]


async def settle(db: Sessions) -> None:
    """Wait until every committed row is readable: the feed holds back rows of transactions
    newer than the oldest one still running anywhere on the server (other tests' too)."""
    async with asyncio.timeout(20):
        while True:
            async with db() as session:
                caught_up = await session.scalar(
                    text(
                        "SELECT coalesce(max(xid) < pg_snapshot_xmin(pg_current_snapshot()), true)"
                        " FROM audit_events"
                    )
                )
            if caught_up:
                return
            await asyncio.sleep(0.01)


async def read_all(
    api: httpx.AsyncClient,
    db: Sessions,
    headers: dict[str, str],
    after: str | None = None,
    **params: Any,
) -> tuple[list[dict[str, Any]], str | None]:
    """Every event after `after` committed so far."""
    await settle(db)
    found: list[dict[str, Any]] = []
    while True:
        page, after_next = await feed(api, headers, after, **params)
        found += page
        if not page:
            return found, after_next
        after = after_next


async def test_every_change_is_an_event_in_order_and_each_channel_sees_its_own(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    t = await teacher(api)
    other_teacher = await teacher(api)
    s = await student(api, credits={"major": 2})
    other = await student(api, credits={"major": 1})
    slot, slot2 = await open_slots(api, t, T0 + 2 * DAY, T0 + 3 * DAY)
    (far,) = await open_slots(api, other_teacher, T0 + 2 * DAY)
    r = await book(api, s, slot)
    assert r.status_code == 201, r.text
    class_id = r.json()["id"]
    r = await api.post(
        f"/v1/classes/{class_id}/cancel", json={"reason": "sick"}, headers=as_("parent_h5", s)
    )
    assert r.status_code == 200, r.text
    assert (await book(api, other, far)).status_code == 201

    everything, _ = await read_all(api, db, FIREMAN, limit=3)
    assert {e["type"] for e in everything} <= TYPES
    ids = [e["id"] for e in everything]
    assert len(ids) == len(set(ids))
    of_s = [(e["type"], e["entity_id"]) for e in everything if e["student_id"] == s]
    assert [t for t, _ in of_s].count("money.credited") == 2
    assert {"class.booked", "class.cancelled", "timeslot.freed", "money.debited"} <= {
        t for t, _ in of_s
    }
    opened = [e for e in everything if e["type"] == "timeslot.opened"]
    assert {e["entity_id"] for e in opened} == {slot, slot2, far}
    booked = next(e for e in everything if e["type"] == "class.booked")
    assert booked["channel"] == "parent_h5" and booked["actor_id"] == str(s)
    assert booked["teacher_ids"] == [t] and booked["payload"]["timeslot_id"] == slot

    # A parent sees its own student's events only; the teacher portal its own teacher's.
    mine, _ = await read_all(api, db, as_("parent_pc", s))
    assert mine and {e["student_id"] for e in mine} == {s}
    assert [e["id"] for e in mine] == [e["id"] for e in everything if e["student_id"] == s]
    theirs, _ = await read_all(api, db, as_("teacher", other_teacher))
    assert theirs and all(other_teacher in e["teacher_ids"] for e in theirs)
    assert {e["type"] for e in theirs} == {"timeslot.opened", "timeslot.booked", "class.booked"}
    nobody, _ = await read_all(api, db, as_("parent_h5", "not-a-student"))
    assert nobody == []

    # types= keeps those types (comma-separated or repeated).
    money, _ = await read_all(api, db, CC, types="money.debited,money.credited")
    assert money and {e["type"] for e in money} == {"money.debited", "money.credited"}
    both, _ = await read_all(api, db, CC, types=["class.booked", "class.cancelled"])
    assert [e["type"] for e in both] == ["class.booked", "class.cancelled", "class.booked"]

    # The cursor: nothing new, the same cursor back; a new change, only that.
    _, cursor = await read_all(api, db, FIREMAN)
    page, again = await feed(api, FIREMAN, cursor)
    assert page == [] and again == cursor
    await open_slots(api, t, T0 + 4 * DAY)
    page, _ = await read_all(api, db, FIREMAN, cursor)
    assert [e["type"] for e in page] == ["timeslot.opened"]

    # The class's history reads the same rows.
    r = await api.get(f"/v1/classes/{class_id}/history", headers=FIREMAN)
    assert [h["action"] for h in r.json()] == ["booked", "cancelled"]


async def test_requests_holds_and_contracts_write_events(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """The store paths that change a request, a hold or a contract write their row in the
    same transaction (run here through the store, as their flows' activities do)."""
    from domain.words import HoldState, RequestState
    from store import class_requests, holds

    t = await teacher(api)
    s = await student(api, credits={"major": 3})
    (slot,) = await open_slots(api, t, T0 + 2 * DAY)
    class_id = (await book(api, s, slot)).json()["id"]
    actor = Actor(channel=Channel.teacher, id=str(t))
    parent = Actor(channel=Channel.parent_h5, id=str(s))
    from domain.payment import Payment
    from domain.rules import BookingRules
    from domain.words import CourseType

    rules = BookingRules()
    async with db.begin() as session:
        request_id = await class_requests.next_request_id(session)
        await class_requests.create_request(
            session,
            request_id=request_id,
            student_id=s,
            teacher_id=t,
            start_at=T0 + 5 * DAY,
            course_type=CourseType.major,
            payment=Payment(asset="credit"),
            actor=parent,
            now=T0,
            rules=rules,
        )
    async with db.begin() as session:
        await class_requests.release(
            session,
            request_id=request_id,
            state=RequestState.withdrawn,
            reason=None,
            actor=parent,
            now=T0,
        )
    async with db.begin() as session:
        await holds.cancel_by_teacher(
            session,
            class_id=class_id,
            teacher_id=t,
            offered=[T0 + 6 * DAY],
            reason="ill",
            actor=actor,
            now=T0,
            rules=rules,
        )
    async with db.begin() as session:
        await holds.close_hold(
            session, class_id, HoldState.ended, Actor(channel=Channel.fireman, id="f"), T0
        )
    events, _ = await read_all(api, db, as_("teacher", t))
    types = [e["type"] for e in events]
    for expected in (
        "request.created",
        "request.withdrawn",
        "hold.started",
        "hold.ended",
        "timeslot.held",
        "class.cancelled",
    ):
        assert expected in types
    mine, _ = await read_all(api, db, as_("parent_h5", s), types="request.created,hold.started")
    assert [e["type"] for e in mine] == ["request.created", "hold.started"]
    assert all(e["student_id"] == s for e in mine)


async def test_bad_cursor_and_unknown_type_are_422(api: httpx.AsyncClient) -> None:
    for params, code in (
        ({"after": "12"}, "bad_cursor"),
        ({"after": "a-b"}, "bad_cursor"),
        ({"after": "99999999999999999999-1"}, "bad_cursor"),
        ({"types": "class.booked,class.exploded"}, "unknown_event_type"),
        ({"types": "CLASS.BOOKED"}, "unknown_event_type"),
    ):
        r = await api.get("/v1/events", params=params, headers=FIREMAN)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["code"] == code
    r = await api.get("/v1/events", params={"limit": 0}, headers=FIREMAN)
    assert r.status_code == 422


async def test_a_slow_transaction_with_the_lower_id_is_not_skipped(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    t = await teacher(api)
    s = await student(api, credits={"major": 1})
    (slot,) = await open_slots(api, t, T0 + 2 * DAY)
    _, cursor = await read_all(api, db, FIREMAN)
    fireman = Actor(channel=Channel.fireman, id="slow")

    slow = db()
    async with slow.begin():
        await audit.record(slow, "timeslot", [slot], "hold_extended", fireman, T0, slow=True)
        slow_id = (await slow.execute(text("SELECT max(id) FROM audit_events"))).scalar_one()
        # A faster transaction (a booking through the API) takes higher ids and commits first.
        assert (await book(api, s, slot)).status_code == 201
        page, held = await feed(api, FIREMAN, cursor)
        # The reader waits for the slow one rather than reading past it.
        assert page == [] and held == cursor
    await slow.close()

    page, _ = await read_all(api, db, FIREMAN, cursor)
    assert page[0]["id"] == slow_id and page[0]["type"] == "timeslot.hold_extended"
    assert all(e["id"] > slow_id for e in page[1:])
    assert {e["type"] for e in page[1:]} == {"timeslot.booked", "class.booked", "money.debited"}


async def test_a_reader_polling_through_racing_writers_gets_every_row_once_in_order(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """Forty transactions take ids and commit in random order while a reader polls."""
    t = await teacher(api)
    (slot,) = await open_slots(api, t, T0 + 2 * DAY)
    _, start = await read_all(api, db, FIREMAN)
    fireman = Actor(channel=Channel.fireman, id="racer")
    rng = random.Random(7)
    done = asyncio.Event()

    async def writer(n: int) -> int:
        await asyncio.sleep(rng.random() * 0.2)
        async with db.begin() as session:
            await audit.record(session, "timeslot", [slot], "hold_extended", fireman, T0, n=n)
            row = (await session.execute(text("SELECT max(id) FROM audit_events"))).scalar_one()
            await asyncio.sleep(rng.random() * 0.3)
        return int(row)

    async def reader() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        cursor = start
        while True:
            finished = done.is_set()
            page, cursor = await feed(api, FIREMAN, cursor, limit=5)
            seen += page
            if finished and not page:
                return seen
            await asyncio.sleep(0.005)

    polling = asyncio.create_task(reader())
    written = await asyncio.gather(*(writer(n) for n in range(40)))
    await settle(db)
    done.set()
    seen = await polling
    ids = [e["id"] for e in seen]
    assert sorted(ids) == sorted(written)  # every row, exactly once
    cursors = [tuple(int(p) for p in e["cursor"].split("-")) for e in seen]
    assert cursors == sorted(cursors)  # in feed order


async def test_open_class_events_concern_its_teacher_and_the_seated_student(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    t = await teacher(api)
    s = await student(api, credits={"open": 1})
    (slot,) = await open_slots(api, t, T0 + 2 * DAY)
    curriculum = as_("curriculum", "cur-1")
    r = await api.post(
        "/v1/open-classes",
        json={"timeslot_id": slot, "title": "Farm", "description": "Songs", "capacity": 2},
        headers=curriculum,
    )
    assert r.status_code == 201, r.text
    open_class = r.json()["id"]
    assert (await api.post(f"/v1/open-classes/{open_class}/list", headers=curriculum)).is_success
    r = await api.post(
        f"/v1/open-classes/{open_class}/seats", json={"student_id": s}, headers=as_("parent_h5", s)
    )
    assert r.status_code == 201, r.text

    everything, _ = await read_all(api, db, FIREMAN)
    assert {e["type"] for e in everything} <= TYPES
    theirs, _ = await read_all(api, db, as_("teacher", t), types="open_class.seat_taken")
    mine, _ = await read_all(api, db, as_("parent_pc", s), types="open_class.seat_taken")
    assert [e["entity_id"] for e in theirs] == [e["entity_id"] for e in mine] == [open_class]
    opened, _ = await read_all(
        api, db, as_("teacher", t), types="open_class.created,open_class.listed"
    )
    assert [e["type"] for e in opened] == ["open_class.created", "open_class.listed"]
