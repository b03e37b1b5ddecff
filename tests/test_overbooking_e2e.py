"""Over-booking end to end on the Temporal dev server, in real time: the API books with no
teacher and starts overbook-{id} with its search attributes, the reservation flow runs on the
server, the classroom's entry is matched from the pool, and the Schedule exists.

covers: TMK-1, CC-1, SD-5a, SD-5b, SD-5c, CLS-2
"""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from domain.overbooking import OverbookingRules, next_half_hour
from domain.rules import BookingRules
from store.db import Sessions
from tests.conftest import STRICT_SANDBOX, Stack
from tests.helpers import CC, FIREMAN, as_, assert_money_consistent, open_slots, student, teacher
from tests.test_e2e_dev_server import flows_of_student
from worker import build_worker
from yueke import schedules
from yueke.settings import Settings, dev_channel_keys


@pytest.fixture
async def live_overbooking(
    dev_server: WorkflowEnvironment, db: Sessions, database_url: str
) -> AsyncIterator[Stack]:
    """As conftest's live_stack, with the classroom open 2 h before the start, so that a
    test in real time can enter a class it booked a moment ago."""
    rules = BookingRules(overbooking=OverbookingRules(entry_opens_before=timedelta(hours=2)))
    settings = Settings(
        database_url=database_url,
        channel_keys=dev_channel_keys(),
        temporal_task_queue=f"yueke-live-{uuid.uuid4().hex[:8]}",
        rules=rules,
    )
    worker = build_worker(dev_server.client, db, settings, workflow_runner=STRICT_SANDBOX)
    app = create_app(settings, temporal_client=dev_server.client)
    async with worker, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://yueke") as api:
            yield Stack(api=api, env=dev_server, settings=settings)


async def test_overbooked_class_matched_from_the_pool_end_to_end(
    live_overbooking: Stack, db: Sessions
) -> None:
    stack = live_overbooking
    api = stack.api
    t = await teacher(api, course_types=("trial",))
    s = await student(api, credits={"trial": 1})
    start = next_half_hour(datetime.now(UTC) + timedelta(minutes=30))
    [slot] = await open_slots(api, t, start)
    r = await api.post(
        "/v1/overbooked-classes",
        json={"student_id": s, "start_at": start.isoformat(), "course_type": "trial"},
        headers=CC,
    )
    assert r.status_code == 201, r.text
    class_id = r.json()["class_id"]
    assert await flows_of_student(stack, s) == {f"overbook-{class_id}": "overbook"}

    run = await api.post("/v1/teacher-reservations", json={}, headers=as_("supply_demand"))
    assert run.status_code == 201, run.text
    assert (run.json()["demand"], run.json()["reserved"]) == (1, 1)

    entered = await api.post(
        f"/v1/classroom/classes/{class_id}/entered", headers=as_("classroom", "room-9")
    )
    assert entered.status_code == 200, entered.text
    assert (entered.json()["teacher_id"], entered.json()["timeslot_id"]) == (t, slot)
    assert entered.json()["matched_from"] == "overbook_pool"
    flow = await api.get(f"/v1/flows/overbook-{class_id}", headers=FIREMAN)
    assert flow.json()["status"] == "RUNNING"
    await assert_money_consistent(db)
    await stack.env.client.get_workflow_handle(f"overbook-{class_id}").terminate("test over")


async def test_the_reservation_schedule_is_created_on_the_server(live_overbooking: Stack) -> None:
    await schedules.ensure(live_overbooking.env.client, live_overbooking.settings)
    handle = live_overbooking.env.client.get_schedule_handle("teacher-reservation")
    described = await handle.describe()
    [calendar] = described.schedule.spec.calendars
    assert [r.start for r in calendar.minute] == [28, 58]
    assert described.schedule.spec.time_zone_name == "Asia/Shanghai"
    await handle.delete()  # tests do not run it on the clock
