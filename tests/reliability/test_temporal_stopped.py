"""Temporal stopped while class requests (flow routes) and bookings and balance reads (no flow)
are called: class requests answer 503 temporal_unavailable within the configured bound, the
rest keep answering 2xx; Temporal started again, class requests answer 201 again by
themselves, and each one that got a 503, retried with its Idempotency-Key, is made once.

covers: TCH-3, LP-6, PAR-1, H5-1
"""

import asyncio
import itertools
import time
from dataclasses import dataclass, field

import asyncpg
import pytest

from tests.helpers import teacher
from tests.reliability.conftest import (
    Processes,
    TemporalDev,
    start_api,
    start_worker,
    worker_polling,
)
from tests.reliability.http import Answer, Answers, Connection, ConnectionDropped, p99
from tests.reliability.invariants import assert_invariants
from tests.reliability.world import HALF_HOUR, hour_ahead, students, teachers_with_slots

pytestmark = pytest.mark.reliability

ASKERS, BOOKERS = 8, 4
CREDITS = 200
FLOW_TIMEOUT = 3.0
BOUND = FLOW_TIMEOUT + 1.5  # a flow route's answer while Temporal is down
WARM, OUTAGE, RECOVERY_BOUND, AFTER = 2.0, 5.0, 30.0, 1.0
ASK_PACE, BOOK_PACE = 0.25, 0.05
LP = {"Authorization": "Bearer dev-lp", "X-Actor-Id": "lp-1"}


@dataclass
class Asked:
    key: str
    body: dict[str, object]
    answers: list[Answer] = field(default_factory=list)


async def test_temporal_stopped_and_started_again(
    procs: Processes, database_url: str, temporal: TemporalDev
) -> None:
    queue = "yueke-reliability"
    start_worker(procs, database_url, temporal.address, queue)
    api = await start_api(
        procs,
        database_url,
        temporal.address,
        YUEKE_TEMPORAL_TASK_QUEUE=queue,
        YUEKE_FLOW_ANSWER_TIMEOUT=FLOW_TIMEOUT,
        YUEKE_TEMPORAL_CONNECT_TIMEOUT=FLOW_TIMEOUT,
    )
    await worker_polling(temporal.address, queue)
    base = hour_ahead(1)
    async with api.client() as http:
        wanted = await teacher(http)
        grid = await teachers_with_slots(http, BOOKERS, [base + i * HALF_HOUR for i in range(300)])
        askers = await students(http, ASKERS, CREDITS)
        bookers = await students(http, BOOKERS, 300)

    answers = Answers()
    asked: list[Asked] = []
    times = itertools.count(1)
    stopping, flowing = asyncio.Event(), asyncio.Event()

    async def ask(c: Connection, item: Asked) -> Answer:
        answer = await c.request(
            "POST", "/v1/class-requests", item.body, headers={"Idempotency-Key": item.key}
        )
        item.answers.append(answer)
        if answer.status == 201:
            flowing.set()
        return answer

    async def asker(n: int) -> None:
        async with Connection(api.port, LP, answers) as c:
            while not stopping.is_set():
                k = next(times)
                body = {
                    "student_id": askers[n],
                    "teacher_id": wanted,
                    "start_at": (base + k * HALF_HOUR).isoformat(),
                    "course_type": "major",
                }
                asked.append(item := Asked(f"ask-{k}", body))
                await ask(c, item)
                await asyncio.sleep(ASK_PACE)

    async def booker(n: int) -> None:
        s, (_, slots) = bookers[n], grid[n]
        async with Connection(api.port, LP, answers) as c:
            for slot in slots:
                if stopping.is_set():
                    return
                body = {"student_id": s, "timeslot_id": slot, "course_type": "major"}
                await c.request("POST", "/v1/classes", body)
                await asyncio.sleep(BOOK_PACE)
                await c.request("GET", f"/v1/students/{s}/balances")
                await asyncio.sleep(BOOK_PACE)

    async def watcher() -> None:
        """Fireman reads the first request's flow (GET /v1/flows/{id}, a query)."""
        fireman = {"Authorization": "Bearer dev-fireman", "X-Actor-Id": "ops-1"}
        async with Connection(api.port, fireman, answers) as c:
            while not stopping.is_set():
                if made := [i for i in asked if i.answers and i.answers[0].status == 201]:
                    request_id = made[0].answers[0].json()["id"]
                    await c.request("GET", f"/v1/flows/class-request-{request_id}")
                await asyncio.sleep(ASK_PACE)

    def asks_since(moment: float) -> list[Answer]:
        return [a for a in answers.all if a.path == "/v1/class-requests" and a.started >= moment]

    moments: dict[str, float] = {}
    load = [asyncio.create_task(asker(n)) for n in range(ASKERS)]
    load += [asyncio.create_task(booker(n)) for n in range(BOOKERS)]
    load.append(asyncio.create_task(watcher()))
    try:
        async with asyncio.timeout(180):
            await flowing.wait()  # a class request was made: the worker runs the flows
            await asyncio.sleep(WARM)
            moments["stop"] = time.monotonic()
            await asyncio.to_thread(temporal.stop)
            moments["stopped"] = time.monotonic()
            await asyncio.sleep(OUTAGE)
            moments["start"] = time.monotonic()
            await temporal.start()
            moments["up"] = time.monotonic()
            while sum(a.status == 201 for a in asks_since(moments["up"])) < ASKERS:
                assert time.monotonic() - moments["up"] < RECOVERY_BOUND, answers.statuses(
                    asks_since(moments["up"])
                )
                await asyncio.sleep(0.1)
            moments["recovered"] = time.monotonic()
            await asyncio.sleep(AFTER)
            stopping.set()
            await asyncio.gather(*load)
            # Every class request that got a 503, again with its key, until it is made.
            async with Connection(api.port, LP, answers) as c:
                for item in asked:
                    while item.answers[-1].status != 201:
                        assert time.monotonic() - moments["up"] < 120, str(item.answers[-1])
                        await ask(c, item)
    except ConnectionDropped:
        pass  # recorded in answers.dropped
    finally:
        stopping.set()
        for task in load:
            task.cancel()
        await asyncio.gather(*load, return_exceptions=True)

    answers.assert_all_well()
    flows = [a for a in answers.all if a.path.startswith(("/v1/class-requests", "/v1/flows"))]
    others = [a for a in answers.all if a not in flows]
    down = [a for a in flows if moments["stopped"] <= a.started < moments["start"]]
    assert {a.path for a in down} > {"/v1/class-requests"}, "flow routes called while down"
    assert answers.statuses(down).keys() == {(503, "temporal_unavailable")}, answers.statuses(down)
    assert max(a.seconds for a in down) < BOUND, sorted(a.seconds for a in down)
    watched = [a for a in flows if a.path.startswith("/v1/flows")]
    assert {a.status for a in watched if a.started + a.seconds < moments["stop"]} <= {200}
    assert {a.status for a in watched if a.started > moments["recovered"]} == {200}
    assert {a.status for a in others} <= {200, 201}, answers.statuses(others)
    others_down = [a for a in others if moments["stopped"] <= a.started < moments["start"]]
    assert len(others_down) >= BOOKERS * 10, "bookings and reads went on while Temporal was down"
    for item in asked:
        statuses = {a.status for a in item.answers}
        assert statuses <= {201, 503} and item.answers[-1].status == 201, item.answers
        made = {a.json()["id"] for a in item.answers if a.status == 201}
        assert len(made) == 1, f"{item.key} made {made}"  # once, whatever the retries

    connection = await asyncpg.connect(database_url)
    try:
        pending = await connection.fetch("SELECT id, state FROM class_requests")
    finally:
        await connection.close()
    made_ids = {item.answers[-1].json()["id"] for item in asked}
    assert {r["id"] for r in pending} == made_ids
    assert {r["state"] for r in pending} == {"pending"}
    await assert_invariants(database_url)
    print(
        f"{len(answers.all)} answers; Temporal stopped in "
        f"{moments['stopped'] - moments['stop']:.1f} s, "
        f"{len(down)} flow calls while down, all 503 temporal_unavailable in "
        f"{min(a.seconds for a in down):.2f}–{max(a.seconds for a in down):.2f} s; "
        f"{len(others_down)} bookings and reads while down, p99 "
        f"{p99([a.seconds for a in others_down]):.3f} s; Temporal up in "
        f"{moments['up'] - moments['start']:.1f} s, class requests made again "
        f"{moments['recovered'] - moments['up']:.1f} s after; {len(asked)} class requests, "
        f"{sum(len(i.answers) > 1 for i in asked)} retried with their key"
    )
