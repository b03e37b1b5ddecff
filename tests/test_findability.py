"""Every flow findable in the Temporal Web UI, on the dev server (search attributes on), in
real time: each kind of flow by `Flow`, and by `StudentId` and `TeacherId` where it has them
(a contract by both its teachers; runs for all students, and the Schedules' runs, with no
placeholder ids); the over-booked class's teacher in its `state` query and in `TeacherId`
after a match at entry, after the flow's own match and after a swap.

covers: CLS-2, SD-5b, SD-5c, SD-5d, FM-7, FM-5, TCH-3, TCH-5, TCH-6, TMK-4, SD-1, SD-6
"""

import asyncio
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from domain.overbooking import OverbookingRules, next_half_hour
from domain.rules import BookingRules
from domain.weekly import next_week
from store.db import Sessions
from tests.conftest import STRICT_SANDBOX, Stack, StartedFlows, record_histories
from tests.helpers import CC, FIREMAN, LP, as_, book, open_slots, student, teacher
from tests.test_class_request_flow import ask, on_grid
from tests.test_contract_flow import pair, proposal
from worker import build_worker, ensure_search_attributes
from yueke import schedules
from yueke.settings import Settings, dev_channel_keys
from yueke.weekly_schedules import WEEKLY_SCHEDULES

CLASSROOM = as_("classroom", "room-1")
SUPPLY = as_("supply_demand", "sd-1")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


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


async def flow_state(stack: Stack, flow_id: str, until: str, **having: Any) -> dict[str, Any]:
    """The flow's `state` query (what GET /v1/flows/{id} answers) once its state is `until`,
    with `having`: the flow acts in real time."""
    state: dict[str, Any] = {}
    for _ in range(100):
        r = await stack.api.get(f"/v1/flows/{flow_id}", headers=FIREMAN)
        state = r.json()["state"] or {}
        if state.get("state") == until and having.items() <= state.items():
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{flow_id} is {state}")


async def found(stack: Stack, query: str, *, settled: bool = False) -> set[str]:
    """The ids of the flows a Web UI search finds. Visibility is eventually consistent: polled
    until something is found, or (settled) until the answer has stayed the same a while."""
    last: set[str] | None = None
    for _ in range(50):
        ids = {w.id async for w in stack.env.client.list_workflows(query)}
        if (ids and not settled) or (settled and ids == last):
            return ids
        last = ids
        await asyncio.sleep(0.2)
    return last or set()


async def flows_found(stack: Stack, query: str, expected: dict[str, str]) -> dict[str, str]:
    """Workflow id -> Flow of what the search finds, once it finds every expected flow."""
    result: dict[str, str] = {}
    for _ in range(50):
        result = {
            w.id: w.search_attributes.get("Flow", [""])[0]
            async for w in stack.env.client.list_workflows(query)
        }
        if expected.keys() <= result.keys():
            return result
        await asyncio.sleep(0.2)
    return result


async def tags(stack: Stack, flow_id: str) -> dict[str, list[str]]:
    """Our search attributes of the flow, as its Web UI page lists them (not Temporal's own)."""
    described = await stack.env.client.get_workflow_handle(flow_id).describe()
    ours = ("Flow", "Channel", "StudentId", "TeacherId")
    return {k: [str(v) for v in vs] for k, vs in described.search_attributes.items() if k in ours}


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
    assert f"overbook-{class_id}" in await found(findable, f'TeacherId = "{t}"')
    assert (await tags(findable, f"overbook-{class_id}"))["TeacherId"] == [str(t)]


async def test_the_teacher_of_a_match_at_entry_then_of_a_swap(findable: Stack) -> None:
    """The classroom's entry is matched by the API, ahead of the start the flow sleeps until:
    the API tells the flow, which shows the teacher at once. A swap moves both to the new
    teacher; the old one no longer finds the class."""
    api = findable.api
    first = await teacher(api, course_types=("trial",))
    second = await teacher(api, course_types=("trial",))
    s = await student(api, credits={"trial": 1})
    start = next_half_hour(datetime.now(UTC) + timedelta(minutes=30))
    await open_slots(api, first, start)
    class_id = await overbooked_class(findable, s, start)
    flow_id = f"overbook-{class_id}"
    entered = await api.post(f"/v1/classroom/classes/{class_id}/entered", headers=CLASSROOM)
    assert entered.json()["teacher_id"] == first, entered.text
    matched = await flow_state(findable, flow_id, "matched")
    assert (matched["teacher_id"], matched["timeslot_id"]) == (first, entered.json()["timeslot_id"])
    assert flow_id in await found(findable, f'TeacherId = "{first}"')

    await open_slots(api, second, start)
    r = await api.post(
        f"/v1/classes/{class_id}/swap-teacher", json={"label": "teacher_no_show"}, headers=FIREMAN
    )
    assert r.status_code == 201, r.text
    swapped = await flow_state(findable, flow_id, "matched", teacher_id=second)
    assert swapped["timeslot_id"] == r.json()["new_timeslot_id"]
    assert flow_id in await found(findable, f'TeacherId = "{second}"')
    assert flow_id not in await found(findable, f'TeacherId = "{first}"', settled=True)
    assert await tags(findable, flow_id) == {
        "Flow": ["overbook"],
        "Channel": ["cc"],
        "StudentId": [str(s)],
        "TeacherId": [str(second)],
    }


async def test_a_change_of_teacher_before_the_start(findable: Stack) -> None:
    """FM-5 on a matched over-booked class: its flow is told like after a swap."""
    api = findable.api
    first = await teacher(api, course_types=("trial",))
    second = await teacher(api, course_types=("trial",))
    s = await student(api, credits={"trial": 1})
    start = next_half_hour(datetime.now(UTC) + timedelta(minutes=30))
    await open_slots(api, first, start)
    class_id = await overbooked_class(findable, s, start)
    entered = await api.post(f"/v1/classroom/classes/{class_id}/entered", headers=CLASSROOM)
    assert entered.json()["teacher_id"] == first, entered.text
    r = await api.post(
        f"/v1/classes/{class_id}/change-teacher",
        json={"teacher_id": second, "old_slot": "reopen"},
        headers=FIREMAN,
    )
    assert r.status_code == 200, r.text
    changed = await flow_state(findable, f"overbook-{class_id}", "matched", teacher_id=second)
    assert changed["timeslot_id"] == r.json()["timeslot_id"]
    assert await found(findable, f'TeacherId = "{second}"') == {f"overbook-{class_id}"}


async def test_every_kind_of_flow_is_found(live_stack: Stack, db: Sessions) -> None:
    """One flow of each kind, started as the API and the Schedules start them, found by the
    searches ops type: `Flow`, `StudentId`, `TeacherId` (a list: a contract is found by both
    its teachers), with no placeholder for what a flow does not have."""
    stack, api = live_stack, live_stack.api
    t = await teacher(api)
    s = await student(api, credits={"major": 3, "trial": 1})
    start = on_grid(datetime.now(UTC), 2 * DAY)
    request = (await ask(api, s, t, start)).json()
    [cancelled_slot, faked_slot] = await open_slots(api, t, start + HOUR, start + 2 * HOUR)
    cancelled = (await book(api, s, cancelled_slot)).json()["id"]
    r = await api.post(
        f"/v1/classes/{cancelled}/teacher-cancel",
        json={"offered_start_at": [(start + DAY).isoformat()]},
        headers=as_("teacher", t),
    )
    assert r.status_code == 201, r.text
    faked = (await book(api, s, faked_slot)).json()["id"]
    r = await api.post(f"/v1/classes/{faked}/fake-cancel", json={}, headers=as_("tmk", "tmk-1"))
    assert r.status_code == 201, r.text
    chinese, foreign = await pair(api)
    first_week = next_week(datetime.now(UTC), "Asia/Shanghai")
    r = await api.post("/v1/contracts", json=proposal(s, chinese, foreign, first_week), headers=LP)
    assert r.status_code == 201, r.text
    contract = r.json()["id"]
    r = await api.post(
        "/v1/overbooked-classes",
        json={"student_id": s, "start_at": start.isoformat(), "course_type": "trial"},
        headers=CC,
    )
    assert r.status_code == 201, r.text
    overbooked = r.json()["class_id"]
    r = await api.post("/v1/booking-runs", json={"kind": "auto"}, headers=SUPPLY)
    assert r.status_code == 201, r.text
    auto_run = r.json()["flow_id"]
    r = await api.post("/v1/teacher-reservations", json={}, headers=SUPPLY)
    assert r.status_code == 201, r.text

    by_student = {
        f"class-request-{request['id']}": "class_request",
        f"teacher-cancel-{cancelled}": "teacher_cancel",
        f"fake-cancel-{faked}": "fake_cancel",
        f"contract-{contract}": "contract",
        f"overbook-{overbooked}": "overbook",
    }
    assert await flows_found(stack, f'StudentId = "{s}"', by_student) == by_student
    by_teacher = {k: v for k, v in by_student.items() if v != "overbook"}
    del by_teacher[f"contract-{contract}"]
    assert await flows_found(stack, f'TeacherId = "{t}"', by_teacher) == by_teacher
    for contract_teacher in (chinese, foreign):
        query = f'TeacherId = "{contract_teacher}"'
        assert await found(stack, query) == {f"contract-{contract}"}
    assert (await tags(stack, f"contract-{contract}"))["TeacherId"] == [str(chinese), str(foreign)]
    running = await found(stack, 'Flow = "class_request" AND ExecutionStatus = "Running"')
    assert f"class-request-{request['id']}" in running
    for flow_id, kind in by_student.items():
        assert flow_id in await found(stack, f'Flow = "{kind}"')
    assert await tags(stack, auto_run) == {"Flow": ["auto_booking"], "Channel": ["supply_demand"]}
    queue = f'TaskQueue = "{stack.settings.temporal_task_queue}"'
    [reservation] = await found(stack, f'Flow = "teacher_reservation" AND {queue}', settled=True)
    assert await tags(stack, reservation) == {
        "Flow": ["teacher_reservation"],
        "Channel": ["supply_demand"],
    }


async def test_runs_the_schedules_start_carry_their_flow(live_stack: Stack) -> None:
    """Every Schedule's run is found by `Flow` (the weekly runs by theirs, the exclusive ones
    both by `exclusive_booking`), with the channel of timed jobs and no student or teacher."""
    client, settings = live_stack.env.client, live_stack.settings
    await schedules.ensure(client, settings)
    expected = {
        "teacher-reservation": "teacher_reservation",
        "operation-key-cleanup": "operation_key_cleanup",
        "auto-booking": "auto_booking",
        "exclusive-booking": "exclusive_booking",
        "exclusive-booking-l7": "exclusive_booking",
    }
    assert expected.keys() == schedules.SCHEDULES.keys() >= WEEKLY_SCHEDULES.keys()
    queue = f'TaskQueue = "{settings.temporal_task_queue}"'
    try:
        for schedule_id, kind in expected.items():
            # A second apart: both exclusive runs are exclusive-booking-weekly-<time>.
            await asyncio.sleep(1)
            await client.get_schedule_handle(schedule_id).trigger()
            query = f'TemporalScheduledById = "{schedule_id}" AND {queue}'
            [run] = await found(live_stack, query)
            assert await tags(live_stack, run) == {"Flow": [kind], "Channel": ["supply_demand"]}
            await client.get_workflow_handle(run).result()
            assert run in await found(live_stack, f'Flow = "{kind}"')
    finally:
        for schedule_id in schedules.SCHEDULES:
            await client.get_schedule_handle(schedule_id).delete()


async def _older_namespace(client: Client) -> str:
    """A namespace registered before TeacherId was a list (as a dev stack's kept data_dir)."""
    namespace = f"older-{uuid.uuid4().hex[:8]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={"TeacherId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},
        )
    )
    return namespace


async def _registered(client: Client, namespace: str) -> dict[str, int]:
    known = (
        await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
    ).custom_attributes
    return {name: known[name] for name in ("Flow", "Channel", "StudentId", "TeacherId")}


async def test_a_worker_leaves_teacher_id_as_keyword_and_names_the_command(
    dev_server: WorkflowEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker's start-up never removes a search attribute (removing and adding again is not
    atomic, and workers start concurrently): it adds what is missing and logs one error with
    the operator's command for the one of another type."""
    client = dev_server.client
    namespace = await _older_namespace(client)
    with caplog.at_level(logging.ERROR, logger="yueke.worker"):
        await ensure_search_attributes(client, namespace)
    assert await _registered(client, namespace) == {
        "Flow": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Channel": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "StudentId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "TeacherId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    }
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "TeacherId" in error and "yueke search-attributes --retype" in error


async def test_the_retype_command_registers_teacher_id_as_a_keyword_list(
    dev_server: WorkflowEnvironment,
) -> None:
    """`yueke search-attributes --retype`, the operator's explicit action, removes TeacherId
    registered as Keyword and adds it again as a KeywordList, with what is missing."""
    client = dev_server.client
    namespace = await _older_namespace(client)
    command = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from yueke.cli import main; main()",
        "search-attributes",
        "--retype",
        env={
            **os.environ,
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": namespace,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await command.communicate()
    assert command.returncode == 0, output.decode()
    assert "retyped: ['TeacherId']" in output.decode()
    assert await _registered(client, namespace) == {
        "Flow": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Channel": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "StudentId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "TeacherId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    }
