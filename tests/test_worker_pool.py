"""A worker process sizes its PostgreSQL pool by YUEKE_DB_POOL_SIZE and waits for a pooled
connection up to YUEKE_DB_POOL_TIMEOUT, as an API process does (the setting is per process)."""

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

import worker
from store.db import create_engine
from yueke.settings import Settings


async def test_the_worker_uses_the_pool_settings(
    dev_server: WorkflowEnvironment, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[AsyncEngine] = []
    stop = asyncio.Event()

    def recorded(url: str, **options: Any) -> AsyncEngine:
        engine = create_engine(url, **options)
        made.append(engine)
        stop.set()  # started: stop at once
        return engine

    monkeypatch.setattr(worker, "create_engine", recorded)
    monkeypatch.setattr(worker.schedules, "ensure", _no_schedules)
    settings = Settings(
        database_url=database_url,
        temporal_address=dev_server.client.service_client.config.target_host,
        temporal_task_queue=f"yueke-pool-{uuid.uuid4().hex[:8]}",
        db_pool_size=3,
        db_pool_timeout=1.5,
    )
    await asyncio.wait_for(worker.run(settings, stop), 60)
    [engine] = made
    assert engine.pool.size() == 3  # type: ignore[attr-defined]
    assert engine.pool._timeout == 1.5  # type: ignore[attr-defined]


async def _no_schedules(*_: object) -> None:
    """The Schedules are findability's concern, not this test's."""
