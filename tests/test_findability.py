"""Every flow findable in the Temporal Web UI, on the dev server (search attributes on), in
real time: the searches ops type, and the over-booked class's teacher in its `state` query and
in `TeacherId` after a match and after a swap.

covers: CLS-2, SD-5c, SD-5d, FM-7
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from domain.overbooking import OverbookingRules, next_half_hour
from domain.rules import BookingRules
from store.db import Sessions
from tests.conftest import STRICT_SANDBOX, Stack, StartedFlows, record_histories
from tests.helpers import CC, FIREMAN, as_, open_slots, student, teacher
from worker import build_worker
from yueke.settings import Settings, dev_channel_keys

CLASSROOM = as_("classroom", "room-1")


@pytest.fixture
async def findable(
    request: pytest.FixtureRequest, dev_server: WorkflowEnvironment, db: Sessions, database_url: str
) -> AsyncIterator[Stack]:
    """The API and a worker on the dev server, the classroom open 2 h before a class's start
    (a test in real time enters a class it booked a moment ago), a waiting student's match
    retried every second; the histories of the flows it started are recorded like the
    time-skipping stack's."""
    started = StartedFlows()
    client = Client(**{**dev_server.client.config(), "interceptors": [started]})
    rules = BookingRules(
        overbooking=OverbookingRules(
            entry_opens_before=timedelta(hours=2), retry_every=timedelta(seconds=1)
        )
    )
    settings = Settings(
        database_url=database_url,
        channel_keys=dev_channel_keys(),
        temporal_task_queue=f"yueke-live-{uuid.uuid4().hex[:8]}",
        rules=rules,
    )
    worker = build_worker(client, db, settings, workflow_runner=STRICT_SANDBOX)
    app = create_app(settings, temporal_client=client)
    async with worker, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://yueke") as api:
            yield Stack(api=api, env=dev_server, settings=settings, flows_client=client)
        if os.environ.get("YUEKE_RECORD_HISTORIES"):
            await record_histories(client, started.runs, request.node.name)
        for flow_id, _ in started.runs:
            await _stop(client, flow_id)


async def _stop(client: Client, flow_id: str) -> None:
    """Flows waiting for a class hours ahead in real time are of no use after the test."""
    try:
        await client.get_workflow_handle(flow_id).terminate("test over")
    except Exception:  # over already
        pass


async def flow_state(stack: Stack, flow_id: str, until: str) -> dict[str, Any]:
    """The flow's `state` query once its state is `until` (it acts in real time)."""
    state: dict[str, Any] = {}
    for _ in range(100):
        r = await stack.api.get(f"/v1/flows/{flow_id}", headers=FIREMAN)
        state = r.json()["state"] or {}
        if state.get("state") == until:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{flow_id} is {state}")


async def overbooked_class(stack: Stack, student_id: int, start: datetime) -> int:
    r = await stack.api.post(
        "/v1/overbooked-classes",
        json={"student_id": student_id, "start_at": start.isoformat(), "course_type": "trial"},
        headers=CC,
    )
    assert r.status_code == 201, r.text
    return int(r.json()["class_id"])


async def test_a_waiting_student_matched_by_the_flow(findable: Stack) -> None:
    """The student enters, nobody is free and waits; the flow's own retry matches the teacher
    who opens a slot then."""
    api = findable.api
    t = await teacher(api, course_types=("trial",))
    s = await student(api, credits={"trial": 1})
    start = next_half_hour(datetime.now(UTC) + timedelta(minutes=30))
    class_id = await overbooked_class(findable, s, start)
    entered = await api.post(f"/v1/classroom/classes/{class_id}/entered", headers=CLASSROOM)
    assert entered.json()["state"] == "waiting", entered.text
    await flow_state(findable, f"overbook-{class_id}", "waiting")
    await open_slots(api, t, start)
    matched = await flow_state(findable, f"overbook-{class_id}", "matched")
    assert matched["teacher_id"] == t
