"""A worker dies in the middle of an approval: its transaction committed, but Temporal hears
only that the attempt failed (as when the process is killed and its connection drops). The
worker is gone; a new one picks the retry up. The class is booked once and paid once
(ARCHITECTURE rule 4: the retry finds the step's operation key and returns its first result).

covers: TCH-3
"""

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.class_request import ClassRequestActivities
from api.app import create_app
from domain.class_request import ApproveRequest, RequestView
from store.db import Sessions
from store.models import Class, LedgerEntry
from tests.conftest import STRICT_SANDBOX
from tests.helpers import LP, as_, assert_money_consistent, balances, student, teacher
from tests.test_class_request_flow import ask, on_grid
from worker import WORKFLOWS, activities, build_worker
from yueke.settings import Settings, dev_channel_keys


async def test_a_worker_killed_mid_approval_books_once(
    time_skipping: WorkflowEnvironment, db: Sessions, database_url: str
) -> None:
    settings = Settings(
        database_url=database_url,
        channel_keys=dev_channel_keys(),
        temporal_task_queue=f"yueke-crash-{uuid.uuid4().hex[:8]}",
        temporal_search_attributes=False,
    )
    real = ClassRequestActivities(db, settings.rules)
    committed = asyncio.Event()

    @activity.defn(name="book_approved_request")
    async def dies_after_commit(step: ApproveRequest) -> RequestView:
        await real.book_approved_request(step)
        committed.set()
        raise ConnectionResetError("the worker died before it could report")

    def with_crash(fns: list[Callable[..., Any]]) -> list[Callable[..., Any]]:
        return [dies_after_commit if f.__name__ == "book_approved_request" else f for f in fns]

    client = time_skipping.client
    doomed = Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=WORKFLOWS,
        activities=with_crash(activities(db, settings)),
        workflow_runner=STRICT_SANDBOX,
        # No sticky queue: the flow's next task must not wait for this worker to come back.
        max_cached_workflows=0,
    )
    app = create_app(settings, temporal_client=client, clock=time_skipping.get_current_time)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://yueke") as api:
            await doomed.__aenter__()
            t = await teacher(api)
            s = await student(api, credits={"major": 1})
            start = on_grid(await time_skipping.get_current_time(), timedelta(days=2))
            request = (await ask(api, s, t, start)).json()
            approving = asyncio.create_task(
                api.post(
                    f"/v1/class-requests/{request['id']}/approve",
                    json={},
                    headers=as_("teacher", t),
                )
            )
            await asyncio.wait_for(committed.wait(), 10)
            await doomed.shutdown()  # gone; the retry needs another worker

            async with build_worker(client, db, settings, workflow_runner=STRICT_SANDBOX):
                approved = await asyncio.wait_for(approving, 60)
            assert approved.status_code == 200, approved.text
            assert approved.json()["state"] == "approved"
            assert (await balances(api, s))["credits"] == {"major": 0}
            got = (await api.get(f"/v1/class-requests/{request['id']}", headers=LP)).json()
            assert got["class_id"] == approved.json()["class_id"]

    async with db() as session:
        classes = await session.scalar(select(func.count()).select_from(Class))
        bookings = await session.scalar(select(func.count()).where(LedgerEntry.reason == "booking"))
    assert (classes, bookings) == (1, 1)
    await assert_money_consistent(db)
