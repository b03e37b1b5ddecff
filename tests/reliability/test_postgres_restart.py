"""PostgreSQL stopped and started again under load: while it is down every answer is a fast
JSON 503 database_unavailable on the same client connections, and once it is back the API
answers 2xx again by itself, with no booking lost or made twice (a booking retried with its
Idempotency-Key after a 503 gets the first answer if the first one committed).

covers: PAR-1, H5-1
"""

import asyncio
import time
from dataclasses import dataclass, field

import asyncpg
import pytest

from store.migrate import upgrade_async
from tests.reliability.conftest import OwnPostgres, Processes, start_api
from tests.reliability.http import Answer, Answers, Connection, ConnectionDropped, p99
from tests.reliability.invariants import assert_invariants
from tests.reliability.world import HALF_HOUR, hour_ahead, students, teachers_with_slots

pytestmark = pytest.mark.reliability

CLIENTS = 12
SLOTS = 300  # per client's own teacher: more than a client books in the test
PACE = 0.05  # seconds between a client's requests
WARM, OUTAGE, RECOVERY_BOUND, AFTER = 2.0, 4.0, 15.0, 1.0
LP = {"Authorization": "Bearer dev-lp", "X-Actor-Id": "lp-1"}


@dataclass
class Client:
    student_id: int
    slots: list[int]
    connection: Connection
    booked: dict[int, int] = field(default_factory=dict)  # slot -> class id
    next_slot: int = 0

    async def book(self) -> Answer:
        """The next slot; after a 503 the same slot with the same key."""
        slot = self.slots[self.next_slot]
        body = {"student_id": self.student_id, "timeslot_id": slot, "course_type": "major"}
        key = {"Idempotency-Key": f"book-{self.student_id}-{slot}"}
        answer = await self.connection.request("POST", "/v1/classes", body, headers=key)
        if answer.status == 201:
            self.booked[slot] = answer.json()["id"]
            self.next_slot += 1
        return answer

    async def read(self) -> Answer:
        return await self.connection.request("GET", f"/v1/students/{self.student_id}/balances")


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_postgres_stopped_and_restarted_under_load(
    procs: Processes, own_postgres: OwnPostgres, mode: str
) -> None:
    """`pg_ctl stop -m fast` (backends terminated, a clean shutdown) and `-m immediate` (as a
    crash: the restart replays the WAL)."""
    admin = await asyncpg.connect(own_postgres.url)
    await admin.execute("CREATE DATABASE yueke")
    await admin.close()
    database_url = own_postgres.url_of("yueke")
    await upgrade_async(database_url)
    api = await start_api(procs, database_url)
    starts = [hour_ahead(1.5) + i * HALF_HOUR for i in range(SLOTS)]
    async with api.client() as http:
        grid = await teachers_with_slots(http, CLIENTS, starts)
        kids = await students(http, CLIENTS, SLOTS)

    answers = Answers()
    clients = [
        Client(s, slots, Connection(api.port, LP, answers, timeout=20))
        for s, (_, slots) in zip(kids, grid, strict=True)
    ]
    stopping = asyncio.Event()
    moments: dict[str, float] = {}

    async def load(client: Client) -> None:
        while not stopping.is_set():
            try:
                await client.book()
                await asyncio.sleep(PACE)
                await client.read()
            except ConnectionDropped:
                pass  # recorded in answers.dropped, and fails the test below
            await asyncio.sleep(PACE)

    async def served_again(since: float) -> bool:
        """Every client has had a 2xx for a request sent after `since`."""
        fine = {a.path for a in answers.all if a.started >= since and a.status < 300}
        return all(f"/v1/students/{c.student_id}/balances" in fine for c in clients)

    loaders = [asyncio.create_task(load(c)) for c in clients]
    try:
        async with asyncio.timeout(120):
            await asyncio.sleep(WARM)
            moments["stop"] = time.monotonic()
            await asyncio.to_thread(own_postgres.stop, mode)
            moments["stopped"] = time.monotonic()
            await asyncio.sleep(OUTAGE)
            moments["start"] = time.monotonic()
            await asyncio.to_thread(own_postgres.start)
            moments["up"] = time.monotonic()
            while not await served_again(moments["up"]):
                assert time.monotonic() - moments["up"] < RECOVERY_BOUND, (
                    f"the API did not recover within {RECOVERY_BOUND} s of PostgreSQL's restart: "
                    f"{answers.statuses([a for a in answers.all if a.started >= moments['up']])}"
                )
                await asyncio.sleep(0.1)
            moments["recovered"] = time.monotonic()
            await asyncio.sleep(AFTER)
    finally:
        stopping.set()
        await asyncio.gather(*loaders, return_exceptions=True)
        for c in clients:
            await c.connection.close()

    answers.assert_all_well()  # JSON, no 5xx but 503 with a code, no connection dropped
    assert not answers.reopened, "the same connections served the whole test"
    before = [a for a in answers.all if a.started + a.seconds < moments["stop"]]
    down = [a for a in answers.all if moments["stopped"] <= a.started < moments["start"]]
    after = [a for a in answers.all if a.started >= moments["recovered"]]
    assert {a.status for a in before} <= {200, 201}, answers.statuses(before)
    assert answers.statuses(down).keys() == {(503, "database_unavailable")}, answers.statuses(down)
    assert len(down) >= CLIENTS * 4, "the load went on while PostgreSQL was down"
    assert p99([a.seconds for a in down]) < 1.0, sorted(a.seconds for a in down)[-10:]
    assert {a.status for a in after} <= {200, 201}, answers.statuses(after)
    # Only a 503 or a 201 for a booking (each client has its own teacher: no one else's
    # booking can take its slot), and a retry after a 503 replays a booking that committed.
    assert {a.status for a in answers.all if a.path == "/v1/classes"} <= {201, 503}

    connection = await asyncpg.connect(database_url)
    try:
        live = {
            (r["student_id"], r["timeslot_id"]): r["id"]
            for r in await connection.fetch(
                "SELECT id, student_id, timeslot_id FROM classes WHERE state <> 'cancelled'"
            )
        }
    finally:
        await connection.close()
    known = {(c.student_id, slot): class_id for c in clients for slot, class_id in c.booked.items()}
    # A booking in flight when the load stopped may have committed unanswered: at most one
    # per client, on its next slot.
    unanswered = {k: v for k, v in live.items() if k not in known}
    assert all(
        k == (c.student_id, c.slots[c.next_slot])
        for k in unanswered
        for c in clients
        if c.student_id == k[0]
    ), unanswered
    assert {k: v for k, v in live.items() if k in known} == known
    await assert_invariants(database_url)
    print(
        f"{len(answers.all)} answers; down {moments['stopped'] - moments['stop']:.2f} s to stop, "
        f"{len(down)} answers while down (p99 {p99([a.seconds for a in down]):.3f} s), "
        f"restart {moments['up'] - moments['start']:.2f} s, served again "
        f"{moments['recovered'] - moments['up']:.2f} s after; {answers.statuses()}"
    )
