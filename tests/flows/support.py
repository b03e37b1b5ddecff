"""What the workflow tests share: a worker running one workflow with test doubles registered
under the real activity names, and a record of what each double was asked."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import refusal_error
from domain.channels import Actor, Channel
from domain.errors import DomainError
from domain.refusal import Refusal
from tests.conftest import STRICT_SANDBOX

ACTOR = Actor(channel=Channel.lp, id="lp-1")


@dataclass
class Call:
    name: str
    step: Any
    attempt: int
    run_id: str | None

    @property
    def now(self) -> datetime:
        moment: datetime = self.step.now
        return moment


@dataclass
class Calls:
    """Every activity call, in order, with the workflow's now at that step."""

    made: list[Call] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self, step: BaseModel) -> Call:
        info = activity.info()
        call = Call(info.activity_type, step, info.attempt, info.workflow_run_id)
        self.made.append(call)
        self.changed.set()
        return call

    def of(self, name: str) -> list[Call]:
        return [c for c in self.made if c.name == name]

    def names(self) -> list[str]:
        return [c.name for c in self.made]

    async def wait_for(self, name: str, count: int = 1) -> list[Call]:
        """Until `name` was called `count` times (the flow runs in another task)."""
        async with asyncio.timeout(10):
            while len(self.of(name)) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.of(name)


def refusal(error: DomainError) -> Exception:
    """What a real store activity raises for a refusal: non-retryable, with code and details."""
    return refusal_error(Refusal.of(error))


@asynccontextmanager
async def running(
    env: WorkflowEnvironment, workflow: type, activities: list[Callable[..., Any]]
) -> AsyncIterator[str]:
    """A worker for one workflow and its doubles on a task queue of its own."""
    queue = f"flows-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[workflow],
        activities=activities,
        workflow_runner=STRICT_SANDBOX,
    ):
        yield queue


def flow_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:8]}"


async def skip_to(env: WorkflowEnvironment, moment: datetime) -> None:
    """Move the time-skipping server's clock to `moment`, firing the timers on the way."""
    await env.sleep(moment - await env.get_current_time())
