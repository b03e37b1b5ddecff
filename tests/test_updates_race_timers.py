"""A fireman's extension or a teacher's answer that lands just before a flow's timer (TCH-5,
TCH-6): the flow applies one at a time, so the store never sees the timer's close while the
update's step is still running, and what the flow says agrees with what it did.

The activities are test doubles under the real names; each update's step is slow (real time),
so a timer still armed while it runs would fire in the middle of it.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.channels import Actor, Channel
from domain.contract import (
    Answer,
    AnswerContract,
    BookContractWeek,
    CloseContract,
    ContractInput,
    ContractState,
    ContractView,
    ProposeContract,
    Started,
    WeeklyTime,
    WeekOutcome,
)
from domain.teacher_cancel import (
    CancelByTeacher,
    CloseHold,
    ExtendHold,
    Extension,
    HoldView,
    TeacherCancelInput,
)
from domain.weekly import Weekday
from domain.words import CourseType, HoldState
from tests.conftest import STRICT_SANDBOX
from workflows.contract import ContractWorkflow
from workflows.teacher_cancel import TeacherCancelHoldWorkflow
from yueke.devstack import installed

FIREMAN = Actor(channel=Channel.fireman, id="ops-1")
SLOW_STEP = 5.0  # seconds of real time an update's activity takes
REMAINING = timedelta(seconds=2)  # left on the timer when the update is sent (a busy machine)


class Store:
    """What the doubles were asked to do, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    yield environment
    await environment.shutdown()


def hold_view(expires_at: datetime, state: HoldState = HoldState.holding) -> HoldView:
    return HoldView(
        class_id=1,
        teacher_id=1,
        student_id=1,
        state=state,
        expires_at=expires_at,
        reason=None,
        booked_class_id=None,
        offered=[],
    )


def hold_doubles(store: Store) -> list[object]:
    @activity.defn(name="cancel_class_and_hold_offers")
    async def cancel(step: CancelByTeacher) -> HoldView:
        store.calls.append(("cancel", step.now))
        return hold_view(step.now + timedelta(hours=24))

    @activity.defn(name="extend_hold")
    async def extend(step: ExtendHold) -> HoldView:
        store.calls.append(("extend_started", step.now))
        await asyncio.sleep(SLOW_STEP)
        store.calls.append(("extend_done", step.until))
        return hold_view(step.until)

    @activity.defn(name="close_hold")
    async def close(step: CloseHold) -> HoldView:
        store.calls.append(("close", step.state))
        return hold_view(step.now, step.state)

    return [cancel, extend, close]


async def test_an_extension_just_before_expiry_is_not_interleaved_with_the_expiry(
    env: WorkflowEnvironment,
) -> None:
    store = Store()
    queue = f"race-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[TeacherCancelHoldWorkflow],
        activities=hold_doubles(store),
        workflow_runner=STRICT_SANDBOX,
    ):
        handle: WorkflowHandle = await env.client.start_workflow(
            TeacherCancelHoldWorkflow.run,
            TeacherCancelInput(
                class_id=1, teacher_id=1, student_id=1, offered=[], reason=None, actor=FIREMAN
            ),
            id=f"teacher-cancel-race-{uuid.uuid4().hex[:6]}",
            task_queue=queue,
        )
        opened: HoldView = await handle.execute_update(TeacherCancelHoldWorkflow.opened)
        await env.sleep(opened.expires_at - await env.get_current_time() - REMAINING)
        until = opened.expires_at + timedelta(hours=12)
        extended: HoldView = await handle.execute_update(
            TeacherCancelHoldWorkflow.extend, Extension(until=until, actor=FIREMAN)
        )

        assert extended.state is HoldState.holding and extended.expires_at == until
        steps = [name for name, _ in store.calls]
        assert steps == ["cancel", "extend_started", "extend_done"], store.calls
        state: HoldView = await handle.query(TeacherCancelHoldWorkflow.state)
        assert state.state is HoldState.holding and state.expires_at == until

        # The new expiry is the one the timer keeps.
        await env.sleep(timedelta(hours=12))
        final: HoldView = await handle.result()
        assert final.state is HoldState.expired
        assert [name for name, _ in store.calls].count("close") == 1


def contract_view(proposed: ContractView | None, now: datetime, **changes: object) -> ContractView:
    base = proposed or ContractView(
        id=1,
        student_id=1,
        chinese_teacher_id=1,
        chinese_weekday=Weekday.monday,
        chinese_start=time(18, 0),
        foreign_teacher_id=2,
        foreign_weekday=Weekday.wednesday,
        foreign_start=time(18, 0),
        first_week=date(2030, 1, 14),
        weeks=4,
        course_type=CourseType.major,
        state=ContractState.proposed,
        chinese_agreed=None,
        foreign_agreed=None,
        reason=None,
        channel="lp",
        actor_id="lp-1",
        created_at=now,
        updated_at=now,
        answer_by=now + timedelta(days=2),
    )
    return base.model_copy(update=changes)


def contract_doubles(store: Store) -> list[object]:
    views: dict[str, ContractView] = {}

    @activity.defn(name="propose_contract")
    async def propose(step: ProposeContract) -> ContractView:
        store.calls.append(("propose", step.now))
        views["now"] = contract_view(None, step.now)
        return views["now"]

    @activity.defn(name="record_contract_answer")
    async def record(step: AnswerContract) -> ContractView:
        store.calls.append(("answer_started", step.answer.teacher_id))
        await asyncio.sleep(SLOW_STEP)
        store.calls.append(("answer_done", step.answer.teacher_id))
        role = "chinese_agreed" if step.answer.teacher_id == 1 else "foreign_agreed"
        views["now"] = views["now"].model_copy(update={role: step.agree})
        return views["now"]

    @activity.defn(name="close_contract")
    async def close(step: CloseContract) -> ContractView:
        store.calls.append(("close", step.state))
        views["now"] = views["now"].model_copy(update={"state": step.state})
        return views["now"]

    @activity.defn(name="start_contract")
    async def start(step: BookContractWeek) -> Started:
        store.calls.append(("start", step.week))
        raise AssertionError("one teacher only answered: nothing to start")

    @activity.defn(name="book_contract_week")
    async def book(step: BookContractWeek) -> WeekOutcome:
        raise AssertionError("nothing to book")

    return [propose, record, close, start, book]


async def test_an_answer_just_before_the_deadline_is_recorded_before_the_expiry(
    env: WorkflowEnvironment,
) -> None:
    store = Store()
    queue = f"race-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[ContractWorkflow],
        activities=contract_doubles(store),
        workflow_runner=STRICT_SANDBOX,
    ):
        lp = Actor(channel=Channel.lp, id="lp-1")
        handle: WorkflowHandle = await env.client.start_workflow(
            ContractWorkflow.run,
            ContractInput(
                contract_id=1,
                student_id=1,
                chinese=WeeklyTime(teacher_id=1, weekday=Weekday.monday, start=time(18, 0)),
                foreign=WeeklyTime(teacher_id=2, weekday=Weekday.wednesday, start=time(18, 0)),
                first_week=date(2030, 1, 14),
                weeks=4,
                course_type=CourseType.major,
                actor=lp,
            ),
            id=f"contract-race-{uuid.uuid4().hex[:6]}",
            task_queue=queue,
        )
        proposed: ContractView = await handle.execute_update(ContractWorkflow.proposed)
        assert proposed.answer_by is not None
        await env.sleep(proposed.answer_by - await env.get_current_time() - REMAINING)
        teacher = Actor(channel=Channel.teacher, id="1")
        answered: ContractView = await handle.execute_update(
            ContractWorkflow.agree, Answer(teacher_id=1, actor=teacher)
        )
        assert answered.chinese_agreed is True

        final: ContractView = await handle.result()
        assert final.state is ContractState.expired
        steps = [name for name, _ in store.calls]
        # The expiry comes after the answer's step, never during it.
        assert steps == ["propose", "answer_started", "answer_done", "close"], store.calls
