"""End to end on the Temporal dev server (as `yueke dev` runs it), in real time: the API, a
worker, PostgreSQL, and the search attributes ops use in the Web UI.

covers: TCH-3, TCH-5, LP-6
"""

import asyncio
from datetime import timedelta

from temporalio.client import WorkflowExecutionStatus

from store.db import Sessions
from tests.conftest import Stack
from tests.helpers import (
    FIREMAN,
    LP,
    as_,
    assert_money_consistent,
    balances,
    book,
    open_slots,
    student,
    teacher,
)
from tests.test_class_request_flow import ask, on_grid

DAY = timedelta(days=1)


async def flows_of_student(stack: Stack, student_id: int) -> dict[str, str]:
    """Workflow id -> Flow, as the Web UI's search by StudentId finds them."""
    query = f'StudentId = "{student_id}"'
    for _ in range(50):  # visibility is eventually consistent
        found = {
            w.id: w.search_attributes.get("Flow", [""])[0]
            async for w in stack.env.client.list_workflows(query)
        }
        if found:
            return found
        await asyncio.sleep(0.1)
    return {}


async def test_class_request_approved_end_to_end(live_stack: Stack, db: Sessions) -> None:
    api = live_stack.api
    t = await teacher(api)
    s = await student(api, credits={"major": 1})
    start = on_grid(await live_stack.now(), 2 * DAY)
    request = (await ask(api, s, t, start)).json()
    r = await api.post(
        f"/v1/class-requests/{request['id']}/approve", json={}, headers=as_("teacher", t)
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "approved"
    flow = await api.get(f"/v1/flows/class-request-{request['id']}", headers=FIREMAN)
    assert flow.json()["state"]["state"] == "approved"
    handle = live_stack.env.client.get_workflow_handle(f"class-request-{request['id']}")
    await handle.result()
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    assert await flows_of_student(live_stack, s) == {
        f"class-request-{request['id']}": "class_request"
    }
    assert (await balances(api, s))["credits"] == {"major": 0}
    await assert_money_consistent(db)


async def test_teacher_cancel_hold_booked_end_to_end(live_stack: Stack, db: Sessions) -> None:
    api = live_stack.api
    t = await teacher(api)
    s = await student(api, credits={"major": 1})
    start = on_grid(await live_stack.now(), 2 * DAY)
    [slot] = await open_slots(api, t, start)
    class_id = (await book(api, s, slot)).json()["id"]
    r = await api.post(
        f"/v1/classes/{class_id}/teacher-cancel",
        json={"offered_start_at": [(start + DAY).isoformat(), (start + 2 * DAY).isoformat()]},
        headers=as_("teacher", t),
    )
    assert r.status_code == 201, r.text
    first, second = (o["id"] for o in r.json()["offered"])
    booked = await book(api, s, first, channel="lp")
    assert booked.status_code == 201, booked.text
    handle = live_stack.env.client.get_workflow_handle(f"teacher-cancel-{class_id}")
    done = await asyncio.wait_for(handle.result(), 10)
    assert (done["state"], done["booked_class_id"]) == ("booked", booked.json()["id"])
    hold = (await api.get(f"/v1/teacher-cancels/{class_id}", headers=LP)).json()
    assert {o["id"]: o["state"] for o in hold["offered"]} == {first: "booked", second: "removed"}
    assert await flows_of_student(live_stack, s) == {f"teacher-cancel-{class_id}": "teacher_cancel"}
    await assert_money_consistent(db)


async def test_health_reports_database_and_temporal(live_stack: Stack) -> None:
    r = await live_stack.api.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"database": "ok", "temporal": "ok"})
