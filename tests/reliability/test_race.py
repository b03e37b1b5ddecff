"""200 clients race for 20 slots through the real HTTP server (`yueke api`), booking and
cancelling, while others read balances: PostgreSQL decides, exactly one booking per slot, and
the money matches the ledger.

covers: PAR-1, H5-1, H5-5, PAR-3
"""

import asyncio
import random
from collections import Counter

import asyncpg
import pytest

from tests.reliability.conftest import Processes, start_api
from tests.reliability.http import Answers, Connection, p99
from tests.reliability.invariants import assert_invariants
from tests.reliability.world import HALF_HOUR, hour_ahead, students, teachers_with_slots

pytestmark = pytest.mark.reliability

CLIENTS = 200
READERS = 20
TEACHERS, STARTS = 4, 5  # 20 slots: 4 teachers at each of 5 starts
CREDITS = 3
ROUNDS = 4
REFUSED = {(409, "slot_already_booked"), (409, "slot_not_open"), (409, "student_busy")}


def parent(student_id: int) -> dict[str, str]:
    return {"Authorization": "Bearer dev-parent_h5", "X-Actor-Id": str(student_id)}


async def test_200_clients_race_for_20_slots(procs: Processes, database_url: str) -> None:
    # The pool waits long enough that a busy CI machine queues bookings instead of answering
    # 503 database_busy (which would still be a correct answer, but not a race).
    api = await start_api(procs, database_url, YUEKE_DB_POOL_TIMEOUT=30)
    starts = [hour_ahead(2) + i * HALF_HOUR for i in range(STARTS)]
    async with api.client() as http:
        grid = await teachers_with_slots(http, TEACHERS, starts)
        kids = await students(http, CLIENTS, CREDITS)
    slots = [slot for _, teacher_slots in grid for slot in teacher_slots]
    answers = Answers()
    connections = [Connection(api.port, parent(s), answers) for s in kids]
    go, raced = asyncio.Event(), asyncio.Event()
    first_answers: list[int] = []
    holding: dict[int, int | None] = dict.fromkeys(kids)
    booked_first: Counter[int] = Counter()
    rng = random.Random(7)

    async def book(s: int, c: Connection, slot: int) -> bool:
        body = {"student_id": s, "timeslot_id": slot, "course_type": "major"}
        answer = await c.request("POST", "/v1/classes", body)
        if answer.status == 201:
            holding[s] = answer.json()["id"]
            return True
        assert (answer.status, answer.code) in REFUSED, str(answer)
        return False

    async def client(n: int, s: int, c: Connection) -> None:
        await c.request("GET", f"/v1/students/{s}/balances")  # the connection is open
        await go.wait()
        slot = slots[n % len(slots)]  # 10 clients on each slot, all at once
        if await book(s, c, slot):
            booked_first[slot] += 1
        first_answers.append(s)
        if len(first_answers) == len(kids):
            raced.set()
        await raced.wait()  # no cancel reopens a slot before every first booking is answered
        for _ in range(ROUNDS):
            class_id = holding[s]
            if class_id is not None and rng.random() < 0.6:
                cancelled = await c.request("POST", f"/v1/classes/{class_id}/cancel", {})
                assert cancelled.status == 200, str(cancelled)
                assert cancelled.json()["refunded"] is True, str(cancelled)
                holding[s] = None
            elif class_id is None:
                await book(s, c, rng.choice(slots))
            read = await c.request("GET", f"/v1/students/{s}/balances")
            assert read.status == 200, str(read)
            assert read.json()["credits"]["major"] >= 0, str(read)

    readers_done = asyncio.Event()

    async def reader(c: Connection) -> None:
        await go.wait()
        while not readers_done.is_set():
            s = rng.choice(kids)
            read = await c.request("GET", f"/v1/students/{s}/balances")
            assert read.status == 200, str(read)
            await asyncio.sleep(0.05)

    staff = {"Authorization": "Bearer dev-lp", "X-Actor-Id": "lp-1"}
    reading = [Connection(api.port, staff, answers) for _ in range(READERS)]
    try:
        async with asyncio.timeout(240):
            clients = [
                asyncio.create_task(client(n, s, c))
                for n, (s, c) in enumerate(zip(kids, connections, strict=True))
            ]
            readers = [asyncio.create_task(reader(c)) for c in reading]
            await asyncio.sleep(0.5)
            go.set()
            await asyncio.gather(*clients)
            readers_done.set()
            await asyncio.gather(*readers)
    finally:
        for c in connections + reading:
            await c.close()

    answers.assert_all_well()
    assert booked_first == dict.fromkeys(slots, 1), "one first booking per slot"
    bookings = [a for a in answers.all if a.path == "/v1/classes"]
    won = sum(a.status == 201 for a in bookings)
    cancels = sum(a.path.endswith("/cancel") for a in answers.all)
    live = {s: c for s, c in holding.items() if c is not None}

    connection = await asyncpg.connect(database_url)
    try:
        in_db = {
            r["student_id"]: r["id"]
            for r in await connection.fetch(
                "SELECT id, student_id FROM classes WHERE state <> 'cancelled'"
            )
        }
        balances = {
            r["student_id"]: r["balance"]
            for r in await connection.fetch(
                "SELECT student_id, balance FROM accounts WHERE asset = 'credit' AND key = 'major'"
            )
        }
        debits = await connection.fetchval(
            "SELECT count(*) FROM ledger_entries WHERE reason = 'booking'"
        )
        refunds = await connection.fetchval(
            "SELECT count(*) FROM ledger_entries WHERE reason = 'refund'"
        )
    finally:
        await connection.close()
    assert in_db == live, "the live classes are the ones clients hold"
    assert len(live) <= len(slots)
    assert (debits, refunds) == (won, cancels)
    assert balances == {s: CREDITS - (s in live) for s in kids}
    await assert_invariants(database_url)
    print(
        f"{len(answers.all)} answers, bookings won {won}, cancelled {cancels}, live {len(live)}; "
        f"p99 {p99([a.seconds for a in answers.all]):.3f} s; {answers.statuses()}"
    )
