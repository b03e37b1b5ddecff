"""The worker killed (kill -9) while teachers' approvals are in flight, then started again:
each approval completes once (one class, one debit), its first answer is the approval or a
503 temporal_unavailable, and every retry with the same Idempotency-Key answers the original
200.

covers: TCH-3
"""

import asyncio
import time

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from tests.helpers import teacher
from tests.reliability.conftest import (
    Processes,
    TemporalDev,
    start_api,
    start_worker,
    worker_polling,
)
from tests.reliability.http import Answer, Answers, Connection
from tests.reliability.invariants import assert_invariants
from tests.reliability.world import HALF_HOUR, hour_ahead, students

pytestmark = pytest.mark.reliability

REQUESTS = 6
STAGGER = 0.04  # seconds between two approvals
KILL_AFTER = 0.1  # after the first approval is sent
FLOW_TIMEOUT = 10.0
RETRY_BOUND = 120.0  # an activity cut off by the kill is retried after its 30 s start-to-close


async def test_worker_killed_mid_approval(
    procs: Processes, database_url: str, temporal: TemporalDev
) -> None:
    queue = "yueke-reliability"
    worker = start_worker(procs, database_url, temporal.address, queue, name="worker-1")
    api = await start_api(
        procs,
        database_url,
        temporal.address,
        YUEKE_TEMPORAL_TASK_QUEUE=queue,
        YUEKE_FLOW_ANSWER_TIMEOUT=FLOW_TIMEOUT,
    )
    await worker_polling(temporal.address, queue)
    answers = Answers()
    lp = {"Authorization": "Bearer dev-lp", "X-Actor-Id": "lp-1"}
    base = hour_ahead(1)
    async with api.client() as http:
        t = await teacher(http)
        kids = await students(http, REQUESTS, 2)
    teacher_headers = {"Authorization": "Bearer dev-teacher", "X-Actor-Id": str(t)}
    requests = []
    async with asyncio.timeout(60), Connection(api.port, lp, answers) as c:
        for n, s in enumerate(kids):
            body = {
                "student_id": s,
                "teacher_id": t,
                "start_at": (base + n * HALF_HOUR).isoformat(),
                "course_type": "major",
            }
            made = await c.request("POST", "/v1/class-requests", body)  # the worker runs it
            assert made.status == 201, str(made)
            requests.append(made.json()["id"])

    def approve(c: Connection, request_id: int, key: str) -> asyncio.Task[Answer]:
        return asyncio.create_task(
            c.request(
                "POST",
                f"/v1/class-requests/{request_id}/approve",
                {"keep_slot": False},
                headers={"Idempotency-Key": key},
            )
        )

    connections = [Connection(api.port, teacher_headers, answers, timeout=60) for _ in requests]
    try:
        async with asyncio.timeout(RETRY_BOUND + 60):
            first: list[asyncio.Task[Answer]] = []
            killed_at = None
            sent = time.monotonic()
            for n, (c, r) in enumerate(zip(connections, requests, strict=True)):
                first.append(approve(c, r, f"approve-{r}"))
                if killed_at is None and time.monotonic() - sent >= KILL_AFTER:
                    worker.kill()  # kill -9
                    killed_at = n
                await asyncio.sleep(STAGGER)
            if killed_at is None:
                worker.kill()
                killed_at = len(requests)
            await asyncio.sleep(1.0)
            start_worker(procs, database_url, temporal.address, queue, name="worker-2")
            firsts = await asyncio.gather(*first)
            for answer in firsts:
                ok = answer.status == 200 and answer.json()["state"] == "approved"
                assert ok or (answer.status, answer.code) == (503, "temporal_unavailable"), str(
                    answer
                )
            # The flows finish by themselves once the new worker runs them (an activity the
            # kill cut off is retried after its 30 s start-to-close timeout). Only then retry
            # the ones that answered 503 with their key: an update id of a flow that is over.
            client = await Client.connect(temporal.address)
            deadline = time.monotonic() + RETRY_BOUND
            for r in requests:
                handle = client.get_workflow_handle(f"class-request-{r}")
                while (await handle.describe()).status != WorkflowExecutionStatus.COMPLETED:
                    assert time.monotonic() < deadline, f"class-request-{r} is not over"
                    await asyncio.sleep(0.5)
            approved: dict[int, Answer] = {
                r: a for r, a in zip(requests, firsts, strict=True) if a.status == 200
            }
            unanswered = [r for r in requests if r not in approved]
            retries = await asyncio.gather(
                *(approve(connections[requests.index(r)], r, f"approve-{r}") for r in unanswered)
            )
            for r, answer in zip(unanswered, retries, strict=True):
                assert answer.status == 200, f"retry of approve-{r} after its flow ended: {answer}"
                approved[r] = answer
            replays = await asyncio.gather(
                *(approve(connections[n], r, f"approve-{r}") for n, r in enumerate(requests))
            )
            again = await asyncio.gather(
                *(approve(connections[n], r, f"approve-{r}-other") for n, r in enumerate(requests))
            )
    finally:
        for c in connections:
            await c.close()

    answers.assert_all_well()
    for r, replay in zip(requests, replays, strict=True):
        assert replay.status == 200 and replay.json() == approved[r].json(), str(replay)
        assert replay.json()["state"] == "approved" and replay.json()["class_id"], str(replay)
    for answer in again:  # a new approval, under another key: the request is closed
        assert (answer.status, answer.code) == (409, "request_closed"), str(answer)

    connection = await asyncpg.connect(database_url)
    try:
        classes = await connection.fetch(
            "SELECT id, student_id, state FROM classes ORDER BY student_id"
        )
        balances = await connection.fetch(
            "SELECT student_id, balance FROM accounts ORDER BY student_id"
        )
        debits = await connection.fetchval(
            "SELECT count(*) FROM ledger_entries WHERE reason = 'booking'"
        )
    finally:
        await connection.close()
    assert [(c["student_id"], c["state"]) for c in classes] == [(s, "booked") for s in sorted(kids)]
    assert {c["id"] for c in classes} == {a.json()["class_id"] for a in approved.values()}
    assert debits == REQUESTS
    assert [(b["student_id"], b["balance"]) for b in balances] == [(s, 1) for s in sorted(kids)]
    await assert_invariants(database_url)

    # What the kill cut off, as the flows' histories tell it.
    retried, timed_out = 0, 0
    for r in requests:
        history = await client.get_workflow_handle(f"class-request-{r}").fetch_history()
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                retried += event.activity_task_started_event_attributes.attempt > 1
            timed_out += event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
    done = max(a.started + a.seconds for a in approved.values()) - sent
    print(
        f"killed after {killed_at} of {REQUESTS} approvals were sent; first answers "
        f"{answers.statuses(firsts)}; activities retried {retried}, workflow tasks timed out "
        f"{timed_out}; all approved {done:.1f} s after the first was sent"
    )
