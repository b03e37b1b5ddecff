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
    ANSWER_AHEAD,
    OFFER_AHEAD,
    AnswerContractWeek,
    BookContractWeek,
    CloseContract,
    ContractInput,
    ContractState,
    ContractView,
    ContractWeekState,
    Created,
    ExpireContractWeeks,
    Expired,
    ProposeContract,
    Role,
    WeekAnswer,
    WeekBooking,
    WeeklyTime,
    WeekOffer,
    WeekOutcome,
)
from domain.rules import BookingRules
from domain.teacher_cancel import (
    CancelByTeacher,
    CloseHold,
    ExtendHold,
    Extension,
    HoldView,
    TeacherCancelInput,
)
from domain.weekly import WEEK, Weekday, week_start
from domain.words import CourseType, HoldState
from tests.conftest import STRICT_SANDBOX
from workflows.contract import ContractWorkflow
from workflows.teacher_cancel import TeacherCancelHoldWorkflow
from yueke.devstack import installed

FIREMAN = Actor(channel=Channel.fireman, id="ops-1")
SLOW_STEP = 5.0  # seconds of real time an update's activity takes
REMAINING = timedelta(seconds=2)  # left on the timer when the update is sent (a busy machine)
ZONE = BookingRules().business_time_zone
FIRST_WEEK = date(2030, 1, 14)
W3 = FIRST_WEEK + 2 * WEEK


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


def contract_view(now: datetime) -> ContractView:
    return ContractView(
        id=1,
        student_id=1,
        chinese_teacher_id=1,
        chinese_weekday=Weekday.monday,
        chinese_start=time(18, 0),
        foreign_teacher_id=2,
        foreign_weekday=Weekday.wednesday,
        foreign_start=time(18, 0),
        first_week=FIRST_WEEK,
        weeks=3,
        course_type=CourseType.major,
        state=ContractState.active,
        chinese_agreed=None,
        foreign_agreed=None,
        reason=None,
        channel="lp",
        actor_id="lp-1",
        created_at=now,
        updated_at=now,
    )


def w3_booking(role: Role, state: ContractWeekState) -> WeekBooking:
    return WeekBooking(
        week=W3,
        role=role,
        start_at=week_start(W3, ZONE),
        class_id=1 if state is ContractWeekState.booked else None,
        reason=None,
        state=state,
        timeslot_id=1,
        answer_by=week_start(W3 - ANSWER_AHEAD, ZONE),
    )


def contract_doubles(store: Store) -> list[object]:
    """W1 and W2 at creation, W3 offered when W1 begins."""

    @activity.defn(name="create_contract")
    async def create(step: ProposeContract) -> Created:
        store.calls.append(("create", step.now))
        weeks = [
            WeekOutcome(
                week=week,
                bookings=[],
                next_booking_at=week_start(week - WEEK, ZONE),
                ends_at=week_start(week + WEEK, ZONE),
            )
            for week in (FIRST_WEEK, FIRST_WEEK + WEEK)
        ]
        return Created(view=contract_view(step.now), weeks=weeks)

    @activity.defn(name="offer_contract_week")
    async def offer(step: BookContractWeek) -> WeekOffer:
        store.calls.append(("offer", step.week))
        return WeekOffer(
            week=step.week,
            bookings=[w3_booking(r, ContractWeekState.awaiting) for r in Role],
            next_offer_at=week_start(step.week + WEEK - OFFER_AHEAD, ZONE),
            ends_at=week_start(step.week + WEEK, ZONE),
        )

    @activity.defn(name="answer_contract_week")
    async def answer(step: AnswerContractWeek) -> WeekBooking:
        store.calls.append(("answer_started", step.answer.teacher_id))
        await asyncio.sleep(SLOW_STEP)
        store.calls.append(("answer_done", step.answer.teacher_id))
        return w3_booking(Role.chinese, ContractWeekState.booked)

    @activity.defn(name="expire_contract_weeks")
    async def expire(step: ExpireContractWeeks) -> Expired:
        store.calls.append(("expire", step.now))
        return Expired(weeks=[w3_booking(Role.foreign, ContractWeekState.expired)])

    @activity.defn(name="close_contract")
    async def close(step: CloseContract) -> ContractView:
        store.calls.append(("close", step.state))
        return contract_view(step.now).model_copy(update={"state": step.state})

    return [create, offer, answer, expire, close]


async def test_a_week_answer_just_before_its_deadline_is_recorded_before_the_expiry(
    env: WorkflowEnvironment,
) -> None:
    """TCH-6: the Chinese teacher agrees to W3 seconds before its deadline; the expiry of
    what is left (the foreign teacher's W3) comes after the answer's step, never during it."""
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
                first_week=FIRST_WEEK,
                weeks=3,
                course_type=CourseType.major,
                actor=lp,
            ),
            id=f"contract-race-{uuid.uuid4().hex[:6]}",
            task_queue=queue,
        )
        await handle.execute_update(ContractWorkflow.proposed)
        answer_by = week_start(W3 - ANSWER_AHEAD, ZONE)
        await env.sleep(answer_by - await env.get_current_time() - REMAINING)
        teacher = Actor(channel=Channel.teacher, id="1")
        answered: WeekBooking = await handle.execute_update(
            ContractWorkflow.answer_week,
            WeekAnswer(teacher_id=1, actor=teacher, week=W3, agree=True),
        )
        assert answered.state is ContractWeekState.booked

        final: ContractView = await handle.result()
        assert final.state is ContractState.finished
        steps = [name for name, _ in store.calls]
        assert steps == [
            "create",
            "offer",
            "answer_started",
            "answer_done",
            "expire",
            "close",
        ], store.calls
