"""A Temporal nobody works for (no worker: updates are never answered) and a pool of 2 (+2
overflow): 30 keyed class requests wait on their flows, holding no connection, so bookings
and balance reads of other callers answer quickly; the class requests answer 503
temporal_unavailable once YUEKE_FLOW_ANSWER_TIMEOUT is over, and a retry with the same key
does the same, never a 500 or a plain-text body.

covers: TCH-3, LP-6, PAR-1, H5-1
"""

import asyncio
import time

import asyncpg
import pytest
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

from api.flows import Flows
from domain.errors import TemporalUnavailable
from tests.reliability.conftest import Processes, TemporalDev, start_api
from tests.reliability.http import Answer, Answers, Connection, p99
from tests.reliability.invariants import assert_invariants
from tests.reliability.world import HALF_HOUR, hour_ahead, students, teachers_with_slots
from yueke.settings import Settings

pytestmark = pytest.mark.reliability

REQUESTS = 30
BOOKERS = 10
FLOW_TIMEOUT, POOL_TIMEOUT = 2.0, 5.0


async def test_pool_pressure_while_flows_never_answer(
    procs: Processes, database_url: str, temporal: TemporalDev
) -> None:
    api = await start_api(
        procs,
        database_url,
        temporal.address,
        YUEKE_DB_POOL_SIZE=2,
        YUEKE_DB_POOL_TIMEOUT=POOL_TIMEOUT,
        YUEKE_FLOW_ANSWER_TIMEOUT=FLOW_TIMEOUT,
        YUEKE_TEMPORAL_TASK_QUEUE="nobody-polls-this",
    )
    base = hour_ahead(1)
    starts = [base + i * HALF_HOUR for i in range(40)]
    async with api.client() as http:
        [(wanted, _)] = await teachers_with_slots(http, 1, starts[:1])
        grid = await teachers_with_slots(http, BOOKERS, starts)
        askers = await students(http, REQUESTS, 2)
        bookers = await students(http, BOOKERS, 40)

    answers = Answers()
    lp = {"Authorization": "Bearer dev-lp", "X-Actor-Id": "lp-1"}
    waiting = asyncio.Event()

    def asked(n: int) -> dict[str, object]:
        return {
            "student_id": askers[n],
            "teacher_id": wanted,
            "start_at": (base + (n + 1) * HALF_HOUR).isoformat(),
            "course_type": "major",
        }

    async def ask(n: int) -> Answer:
        async with Connection(api.port, lp, answers) as c:
            return await c.request(
                "POST", "/v1/class-requests", asked(n), headers={"Idempotency-Key": f"ask-{n}"}
            )

    async def book_and_read(n: int) -> None:
        s, (_, slots) = bookers[n], grid[n]
        async with Connection(api.port, lp, answers) as c:
            for slot in slots:
                if waiting.is_set():
                    return
                body = {"student_id": s, "timeslot_id": slot, "course_type": "major"}
                booked = await c.request("POST", "/v1/classes", body)
                assert booked.status == 201, str(booked)
                read = await c.request("GET", f"/v1/students/{s}/balances")
                assert read.status == 200, str(read)

    async with asyncio.timeout(60):
        started = time.monotonic()
        asking = [asyncio.create_task(ask(n)) for n in range(REQUESTS)]
        await asyncio.sleep(0.3)  # the requests are waiting on their flows
        others = [asyncio.create_task(book_and_read(n)) for n in range(BOOKERS)]
        asks = await asyncio.gather(*asking)
        waiting.set()
        await asyncio.gather(*others)
        # The same key again: the flow it reserved still does not answer.
        async with Connection(api.port, lp, answers) as c:
            again = await c.request(
                "POST", "/v1/class-requests", asked(0), headers={"Idempotency-Key": "ask-0"}
            )

    answers.assert_all_well()
    for answer in [*asks, again]:
        assert (answer.status, answer.code) == (503, "temporal_unavailable"), str(answer)
        assert FLOW_TIMEOUT - 0.1 <= answer.seconds < FLOW_TIMEOUT + 3, answer.seconds
    others_answers = [a for a in answers.all if a.path != "/v1/class-requests"]
    during = [a for a in others_answers if a.started < started + FLOW_TIMEOUT]
    assert len(during) >= BOOKERS * 2, "bookings and reads ran while the flows waited"
    assert {a.status for a in others_answers} <= {200, 201}, answers.statuses(others_answers)
    assert p99([a.seconds for a in others_answers]) < POOL_TIMEOUT

    connection = await asyncpg.connect(database_url)
    try:
        requests = await connection.fetchval("SELECT count(*) FROM class_requests")
        held = await connection.fetchval(
            "SELECT count(*) FROM ledger_entries WHERE request_id IS NOT NULL"
        )
    finally:
        await connection.close()
    assert (requests, held) == (0, 0), "no worker ran a flow: nothing was held"
    await assert_invariants(database_url)
    print(
        f"class requests: {len(asks) + 1} × 503 temporal_unavailable in "
        f"{min(a.seconds for a in asks):.2f}–{max(a.seconds for a in asks):.2f} s; bookings and "
        f"reads: {len(others_answers)}, {len(during)} while the flows waited, p99 "
        f"{p99([a.seconds for a in others_answers]):.3f} s, max "
        f"{max(a.seconds for a in others_answers):.3f} s"
    )


async def test_an_update_cut_off_at_its_bound_is_temporal_unavailable() -> None:
    """What the test above found: temporalio turns the cancelled update call into
    WorkflowUpdateRPCTimeoutOrCancelledError (not a CancelledError that asyncio.timeout turns
    into TimeoutError), which answered 500 internal_error."""
    flows = Flows(Settings(database_url="unused"))
    with pytest.raises(TemporalUnavailable) as answer:
        async with flows._bounded("class-request-1"):
            raise WorkflowUpdateRPCTimeoutOrCancelledError()
    assert answer.value.details["flow_id"] == "class-request-1"
