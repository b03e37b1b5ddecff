"""The dual-excellence contract flow (双优合约) with its store activities replaced by doubles:
the answers and their deadline, the weekly loop that keeps two weeks booked ahead, the end of
a fixed contract, continue-as-new of a long one, termination.

covers: TCH-6, SD-7
"""

import asyncio
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from domain.contract import (
    Answer,
    AnswerContract,
    BookContractWeek,
    CloseContract,
    ContractClosed,
    ContractInput,
    ContractState,
    ContractView,
    ProposeContract,
    Role,
    Started,
    Termination,
    WeekBooking,
    WeeklyTime,
    WeekOutcome,
)
from domain.rules import BookingRules
from domain.weekly import WEEK, Weekday, at, week_of, week_start
from domain.words import CourseType
from store.contracts import WEEKS_AHEAD
from tests.flows.support import ACTOR, Calls, flow_id, refusal, running, skip_to
from workflows.contract import ContractWorkflow

ZONE = BookingRules().business_time_zone
CHINESE, FOREIGN = 30, 40
SECOND = timedelta(seconds=1)
BOOK = "book_contract_week"


class FakeContracts:
    """One contract as store.contracts keeps it: answers only while proposed, W1 and W2 at the
    start, each week's outcome saying when the week after is due."""

    def __init__(self) -> None:
        self.calls = Calls()
        self.view: ContractView | None = None
        self.input: ContractInput | None = None
        self.close_gate: asyncio.Event | None = None

    def _outcome(self, week: date) -> WeekOutcome:
        assert self.input is not None
        bookings = [
            WeekBooking(
                week=week,
                role=role,
                start_at=at(week, slot.weekday.number, slot.start, ZONE),
                class_id=week.toordinal() * 10 + i,
                reason=None,
            )
            for i, (role, slot) in enumerate(
                ((Role.chinese, self.input.chinese), (Role.foreign, self.input.foreign))
            )
        ]
        return WeekOutcome(
            week=week,
            bookings=bookings,
            next_booking_at=week_start(week - (WEEKS_AHEAD - 1) * WEEK, ZONE),
            ends_at=week_start(week + WEEK, ZONE),
        )

    @activity.defn(name="propose_contract")
    async def propose(self, step: ProposeContract) -> ContractView:
        self.calls.note(step)
        c = self.input = step.contract
        self.view = ContractView(
            id=c.contract_id,
            student_id=c.student_id,
            chinese_teacher_id=c.chinese.teacher_id,
            chinese_weekday=c.chinese.weekday,
            chinese_start=c.chinese.start,
            foreign_teacher_id=c.foreign.teacher_id,
            foreign_weekday=c.foreign.weekday,
            foreign_start=c.foreign.start,
            first_week=c.first_week,
            weeks=c.weeks,
            course_type=c.course_type,
            state=ContractState.proposed,
            chinese_agreed=None,
            foreign_agreed=None,
            reason=None,
            channel=c.actor.channel.value,
            actor_id=c.actor.id,
            created_at=step.now,
            updated_at=step.now,
            answer_by=week_start(c.first_week, ZONE),
        )
        return self.view

    @activity.defn(name="record_contract_answer")
    async def answer(self, step: AnswerContract) -> ContractView:
        self.calls.note(step)
        assert self.view is not None
        if self.view.state is not ContractState.proposed:
            raise refusal(ContractClosed("not waiting for answers", state=self.view.state.value))
        role = "chinese" if step.answer.teacher_id == CHINESE else "foreign"
        changes: dict[str, object] = {f"{role}_agreed": step.agree}
        if not step.agree:
            changes |= {"state": ContractState.declined, "reason": step.answer.reason}
        self.view = self.view.model_copy(update=changes)
        return self.view

    @activity.defn(name="start_contract")
    async def start(self, step: BookContractWeek) -> Started:
        self.calls.note(step)
        assert self.view is not None and self.input is not None
        self.view = self.view.model_copy(update={"state": ContractState.active})
        weeks = min(WEEKS_AHEAD, self.input.weeks or WEEKS_AHEAD)
        return Started(weeks=[self._outcome(step.week + i * WEEK) for i in range(weeks)])

    @activity.defn(name=BOOK)
    async def book(self, step: BookContractWeek) -> WeekOutcome:
        self.calls.note(step)
        return self._outcome(step.week)

    @activity.defn(name="close_contract")
    async def close(self, step: CloseContract) -> ContractView:
        self.calls.note(step)
        if self.close_gate is not None:
            await self.close_gate.wait()
        assert self.view is not None
        self.view = self.view.model_copy(update={"state": step.state, "reason": step.reason})
        return self.view

    def activities(self) -> list[Callable[..., Any]]:
        return [self.propose, self.answer, self.start, self.book, self.close]


@pytest.fixture
def store() -> FakeContracts:
    return FakeContracts()


Handle = WorkflowHandle[ContractWorkflow, ContractView | None]


async def propose(
    env: WorkflowEnvironment, queue: str, *, weeks: int | None, weeks_per_run: int = 26
) -> tuple[Handle, ContractView]:
    """A contract whose first week begins two weeks after this one."""
    first_week = week_of(await env.get_current_time(), ZONE) + 2 * WEEK
    contract = ContractInput(
        contract_id=5,
        student_id=2,
        chinese=WeeklyTime(teacher_id=CHINESE, weekday=Weekday.tuesday, start=time(19)),
        foreign=WeeklyTime(teacher_id=FOREIGN, weekday=Weekday.friday, start=time(19, 30)),
        first_week=first_week,
        weeks=weeks,
        course_type=CourseType.major,
        actor=ACTOR,
        weeks_per_run=weeks_per_run,
    )
    handle = await env.client.start_workflow(
        ContractWorkflow.run, contract, id=flow_id("contract"), task_queue=queue
    )
    return handle, await handle.execute_update(ContractWorkflow.proposed)


def teacher(teacher_id: int) -> Answer:
    actor = ACTOR.model_copy(update={"channel": "teacher", "id": str(teacher_id)})
    return Answer(actor=actor, teacher_id=teacher_id)


async def both_agree(handle: Handle) -> ContractView:
    await handle.execute_update(ContractWorkflow.agree, teacher(CHINESE))
    return await handle.execute_update(ContractWorkflow.agree, teacher(FOREIGN))


def booked_weeks(store: FakeContracts) -> list[tuple[date, datetime]]:
    return [(c.step.week, c.now) for c in store.calls.of(BOOK)]


def near(moment: datetime, expected: datetime) -> bool:
    return expected <= moment < expected + SECOND


async def test_a_fixed_contract_keeps_two_weeks_booked_and_finishes_after_its_last(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6, SD-7. Four weeks: W1 and W2 at the second yes; W3 when W1 begins, W4
    when W2 begins; finished when W4 is over."""
    async with running(time_skipping, ContractWorkflow, store.activities()) as queue:
        handle, proposed = await propose(time_skipping, queue, weeks=4)
        active = await both_agree(handle)
        assert active.state is ContractState.active
        result = await handle.result()

    w1 = proposed.first_week
    assert len(store.calls.of("start_contract")) == 1
    booked = booked_weeks(store)
    assert [week for week, _ in booked] == [w1 + 2 * WEEK, w1 + 3 * WEEK]
    for (week, when), begins in zip(booked, (w1, w1 + WEEK), strict=True):
        assert near(when, week_start(begins, ZONE)), (week, when)
    [close] = store.calls.of("close_contract")
    assert close.step.state is ContractState.finished
    assert near(close.now, week_start(w1 + 4 * WEEK, ZONE))
    assert result is not None and result.state is ContractState.finished


async def test_a_one_week_contract_books_one_week_and_finishes_when_it_is_over(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6, SD-7"""
    async with running(time_skipping, ContractWorkflow, store.activities()) as queue:
        handle, proposed = await propose(time_skipping, queue, weeks=1)
        await both_agree(handle)
        result = await handle.result()
    assert store.calls.of(BOOK) == []
    [close] = store.calls.of("close_contract")
    assert near(close.now, week_start(proposed.first_week + WEEK, ZONE))
    assert result is not None and result.state is ContractState.finished


async def test_a_long_contract_continues_as_new_and_carries_its_progress(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6, SD-7. An open-ended contract with two weeks per run: after W3 and W4 the
    run continues as new; the next run knows four weeks are booked and books W5 on time."""
    client = time_skipping.client
    async with running(time_skipping, ContractWorkflow, store.activities()) as queue:
        first, proposed = await propose(time_skipping, queue, weeks=None, weeks_per_run=2)
        await both_agree(first)
        w1 = proposed.first_week
        await skip_to(time_skipping, week_start(w1 + WEEK, ZONE) + SECOND)
        latest = client.get_workflow_handle_for(ContractWorkflow.run, first.id)
        assert (await latest.describe()).run_id != first.first_execution_run_id
        old = client.get_workflow_handle(first.id, run_id=first.first_execution_run_id)
        assert (await old.describe()).status is WorkflowExecutionStatus.CONTINUED_AS_NEW

        carried = await latest.query(ContractWorkflow.state)
        assert (carried.weeks_booked, carried.next_week) == (4, w1 + 4 * WEEK)
        assert [b.week for b in carried.recent_weeks][-2:] == [w1 + 3 * WEEK] * 2

        await skip_to(time_skipping, week_start(w1 + 2 * WEEK, ZONE) + SECOND)
        ended = await latest.execute_update(ContractWorkflow.terminate, Termination(actor=ACTOR))
        result = await latest.result()

    booked = store.calls.of(BOOK)
    assert [c.step.week for c in booked] == [w1 + 2 * WEEK, w1 + 3 * WEEK, w1 + 4 * WEEK]
    assert near(booked[2].now, week_start(w1 + 2 * WEEK, ZONE))
    assert booked[0].run_id == booked[1].run_id != booked[2].run_id
    assert ended.state is ContractState.terminated
    assert result is not None and result.state is ContractState.terminated


async def test_an_unanswered_contract_expires_when_its_first_week_begins(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6. One yes is not enough; nothing is booked."""
    async with running(time_skipping, ContractWorkflow, store.activities()) as queue:
        handle, proposed = await propose(time_skipping, queue, weeks=4)
        await handle.execute_update(ContractWorkflow.agree, teacher(FOREIGN))
        result = await handle.result()
    assert proposed.answer_by == week_start(proposed.first_week, ZONE)
    [close] = store.calls.of("close_contract")
    assert close.step.state is ContractState.expired
    assert near(close.now, proposed.answer_by)
    assert store.calls.of("start_contract") == [] and store.calls.of(BOOK) == []
    assert result is not None and result.state is ContractState.expired


async def test_one_no_ends_the_contract_and_later_answers_are_refused(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6"""
    async with running(time_skipping, ContractWorkflow, store.activities()) as queue:
        handle, _ = await propose(time_skipping, queue, weeks=4)
        declined = await handle.execute_update(ContractWorkflow.decline, teacher(CHINESE))
        assert declined.state is ContractState.declined
        result = await handle.result()
    assert store.calls.names() == ["propose_contract", "record_contract_answer"]
    assert result is not None and result.state is ContractState.declined


async def test_only_the_contracts_teachers_answer(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6"""
    async with running(time_skipping, ContractWorkflow, store.activities()) as queue:
        handle, _ = await propose(time_skipping, queue, weeks=4)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(ContractWorkflow.agree, teacher(99))
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "not_contract_teacher"
        await handle.terminate()
    assert store.calls.of("record_contract_answer") == []


async def test_terminating_between_weeks_stops_the_loop_at_once(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6. Terminated in the week before W1: closed then, and W3, due when W1
    begins, is never booked."""
    async with running(time_skipping, ContractWorkflow, store.activities()) as queue:
        handle, proposed = await propose(time_skipping, queue, weeks=10)
        await both_agree(handle)
        middle = week_start(proposed.first_week, ZONE) - timedelta(days=3)
        await skip_to(time_skipping, middle)
        ended = await handle.execute_update(ContractWorkflow.terminate, Termination(actor=ACTOR))
        await handle.result()
    assert store.calls.of(BOOK) == []
    [close] = store.calls.of("close_contract")
    assert close.step.state is ContractState.terminated
    assert near(close.now, middle)
    assert ended.state is ContractState.terminated


async def answer_in_time(handle: Handle, update: "asyncio.Task[ContractView]") -> ContractView:
    """The update's answer within a few seconds, and the flow over; else the flow hangs."""
    done, _ = await asyncio.wait([update], timeout=3)
    if not done:
        update.cancel()
        await asyncio.gather(update, return_exceptions=True)
        await handle.terminate()
        raise AssertionError("the update was never answered")
    async with asyncio.timeout(3):
        await handle.result()
    return update.result()


@pytest.mark.parametrize("update", ["agree", "terminate"])
async def test_an_update_arriving_while_the_expiry_is_recorded_is_refused(
    time_skipping: WorkflowEnvironment, store: FakeContracts, update: str
) -> None:
    """covers: TCH-6. The first week began without both answers; while the flow records the
    expiry, a teacher's yes or the LP's termination arrives (both validators still see a
    proposed contract). The caller should hear contract_closed and the flow end expired."""
    store.close_gate = asyncio.Event()
    async with running(time_skipping, ContractWorkflow, store.activities()) as queue:
        handle, proposed = await propose(time_skipping, queue, weeks=4)
        assert proposed.answer_by is not None
        await skip_to(time_skipping, proposed.answer_by + SECOND)
        await store.calls.wait_for("close_contract")
        late = asyncio.create_task(
            handle.execute_update(ContractWorkflow.agree, teacher(CHINESE))
            if update == "agree"
            else handle.execute_update(ContractWorkflow.terminate, Termination(actor=ACTOR))
        )
        await asyncio.sleep(0.5)
        store.close_gate.set()
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await answer_in_time(handle, late)
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "contract_closed"
    assert store.view is not None and store.view.state is ContractState.expired


async def test_a_termination_arriving_while_the_contract_finishes_is_answered(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6. The last week is over and the flow is recording that; the LP's
    termination, accepted because the contract still looks active, should be answered
    (refused as contract_closed) and the flow end finished."""
    async with running(time_skipping, ContractWorkflow, store.activities()) as queue:
        handle, proposed = await propose(time_skipping, queue, weeks=1)
        await both_agree(handle)
        store.close_gate = asyncio.Event()
        await skip_to(time_skipping, week_start(proposed.first_week + WEEK, ZONE) + SECOND)
        await store.calls.wait_for("close_contract")
        late = asyncio.create_task(
            handle.execute_update(ContractWorkflow.terminate, Termination(actor=ACTOR))
        )
        await asyncio.sleep(0.5)
        store.close_gate.set()
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await answer_in_time(handle, late)
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "contract_closed"
    assert store.view is not None and store.view.state is ContractState.finished
