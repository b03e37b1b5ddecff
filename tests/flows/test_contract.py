"""The dual-excellence contract flow (双优合约) with its store activities replaced by doubles:
creation with W1 and W2, each later week offered two weeks ahead, the teachers' answers and
their deadline, the end of a fixed contract, continue-as-new of a long one, termination.

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
from temporalio.worker import Worker

from domain.contract import (
    ANSWER_AHEAD,
    OFFER_AHEAD,
    AnswerContractWeek,
    BookContractWeek,
    CloseContract,
    ContractInput,
    ContractState,
    ContractView,
    ContractWeekAnswered,
    ContractWeekState,
    Created,
    ExpireContractWeeks,
    Expired,
    Progress,
    ProposeContract,
    Role,
    Termination,
    WeekAnswer,
    WeekBooking,
    WeeklyTime,
    WeekOffer,
    WeekOutcome,
)
from domain.rules import BookingRules
from domain.weekly import WEEK, Weekday, at, week_of, week_start
from domain.words import CourseType
from store.contracts import WEEKS_AHEAD
from tests.conftest import STRICT_SANDBOX
from tests.flows.support import ACTOR, Calls, flow_id, refusal, running, skip_to
from workflows.contract import ContractWorkflow

ZONE = BookingRules().business_time_zone
CHINESE, FOREIGN = 30, 40
SECOND = timedelta(seconds=1)
OFFER, EXPIRE, ANSWER = "offer_contract_week", "expire_contract_weeks", "answer_contract_week"


def contract_view(c: ContractInput, now: datetime) -> ContractView:
    """The active contract as the store returns it."""
    return ContractView(
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
        state=ContractState.active,
        chinese_agreed=None,
        foreign_agreed=None,
        reason=None,
        channel=c.actor.channel.value,
        actor_id=c.actor.id,
        created_at=now,
        updated_at=now,
    )


class FakeContracts:
    """One contract as store.contracts keeps it: W1 and W2 booked at creation, each later week
    offered to both teachers, answers only while a week awaits them, expiry at the deadline."""

    def __init__(self) -> None:
        self.calls = Calls()
        self.view: ContractView | None = None
        self.input: ContractInput | None = None
        self.weeks: dict[tuple[date, Role], WeekBooking] = {}
        self.close_gate: asyncio.Event | None = None
        self.offer_gate: asyncio.Event | None = None

    def _week(self, week: date, state: ContractWeekState) -> list[WeekBooking]:
        assert self.input is not None
        out = []
        for i, (role, slot) in enumerate(
            ((Role.chinese, self.input.chinese), (Role.foreign, self.input.foreign))
        ):
            booked = state is ContractWeekState.booked
            out.append(
                WeekBooking(
                    week=week,
                    role=role,
                    start_at=at(week, slot.weekday.number, slot.start, ZONE),
                    class_id=week.toordinal() * 10 + i if booked else None,
                    reason=None,
                    state=state,
                    timeslot_id=week.toordinal() * 10 + i,
                    answer_by=None if booked else week_start(week - ANSWER_AHEAD, ZONE),
                )
            )
        self.weeks |= {(b.week, b.role): b for b in out}
        return out

    @activity.defn(name="create_contract")
    async def create(self, step: ProposeContract) -> Created:
        self.calls.note(step)
        c = self.input = step.contract
        self.view = contract_view(c, step.now)
        weeks = [c.first_week + i * WEEK for i in range(min(WEEKS_AHEAD, c.weeks or WEEKS_AHEAD))]
        outcomes = [
            WeekOutcome(
                week=week,
                bookings=self._week(week, ContractWeekState.booked),
                next_booking_at=week_start(week - (WEEKS_AHEAD - 1) * WEEK, ZONE),
                ends_at=week_start(week + WEEK, ZONE),
            )
            for week in weeks
        ]
        return Created(view=self.view, weeks=outcomes)

    @activity.defn(name=OFFER)
    async def offer(self, step: BookContractWeek) -> WeekOffer:
        self.calls.note(step)
        if self.offer_gate is not None:
            await self.offer_gate.wait()
        return WeekOffer(
            week=step.week,
            bookings=self._week(step.week, ContractWeekState.awaiting),
            next_offer_at=week_start(step.week + WEEK - OFFER_AHEAD, ZONE),
            ends_at=week_start(step.week + WEEK, ZONE),
        )

    @activity.defn(name=ANSWER)
    async def answer(self, step: AnswerContractWeek) -> WeekBooking:
        self.calls.note(step)
        role = Role.chinese if step.answer.teacher_id == CHINESE else Role.foreign
        week = self.weeks[(step.answer.week, role)]
        if week.state is not ContractWeekState.awaiting:
            raise refusal(ContractWeekAnswered("not awaiting", state=week.state.value))
        state = ContractWeekState.booked if step.answer.agree else ContractWeekState.declined
        self.weeks[(week.week, role)] = week = week.model_copy(
            update={"state": state, "answered_at": step.now}
        )
        return week

    @activity.defn(name=EXPIRE)
    async def expire(self, step: ExpireContractWeeks) -> Expired:
        self.calls.note(step)
        overdue = [
            w
            for w in self.weeks.values()
            if w.state is ContractWeekState.awaiting
            and w.answer_by is not None
            and w.answer_by <= step.now
        ]
        for w in overdue:
            self.weeks[(w.week, w.role)] = w.model_copy(update={"state": ContractWeekState.expired})
        return Expired(weeks=[self.weeks[(w.week, w.role)] for w in overdue])

    @activity.defn(name="close_contract")
    async def close(self, step: CloseContract) -> ContractView:
        self.calls.note(step)
        if self.close_gate is not None:
            await self.close_gate.wait()
        assert self.view is not None
        self.view = self.view.model_copy(update={"state": step.state, "reason": step.reason})
        return self.view

    def activities(self) -> list[Callable[..., Any]]:
        return [self.create, self.offer, self.answer, self.expire, self.close]


@pytest.fixture
def store() -> FakeContracts:
    return FakeContracts()


Handle = WorkflowHandle[ContractWorkflow, ContractView | None]


async def contract_input(
    env: WorkflowEnvironment, *, weeks: int | None, weeks_per_run: int = 26
) -> ContractInput:
    return ContractInput(
        contract_id=5,
        student_id=2,
        chinese=WeeklyTime(teacher_id=CHINESE, weekday=Weekday.tuesday, start=time(19)),
        foreign=WeeklyTime(teacher_id=FOREIGN, weekday=Weekday.friday, start=time(19, 30)),
        first_week=week_of(await env.get_current_time(), ZONE) + 2 * WEEK,
        weeks=weeks,
        course_type=CourseType.major,
        actor=ACTOR,
        weeks_per_run=weeks_per_run,
    )


async def create(
    env: WorkflowEnvironment, queue: str, *, weeks: int | None, weeks_per_run: int = 26
) -> tuple[Handle, ContractView]:
    """A contract whose first week begins two weeks after this one."""
    contract = await contract_input(env, weeks=weeks, weeks_per_run=weeks_per_run)
    handle = await env.client.start_workflow(
        ContractWorkflow.run, contract, id=flow_id("contract"), task_queue=queue
    )
    return handle, await handle.execute_update(ContractWorkflow.proposed)


def teacher(teacher_id: int, week: date, *, agree: bool = True) -> WeekAnswer:
    actor = ACTOR.model_copy(update={"channel": "teacher", "id": str(teacher_id)})
    return WeekAnswer(actor=actor, teacher_id=teacher_id, week=week, agree=agree)


def near(moment: datetime, expected: datetime) -> bool:
    return expected <= moment < expected + SECOND


async def test_a_fixed_contract_offers_each_later_week_and_finishes_after_its_last(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6, SD-7. Four weeks: W1 and W2 at creation; W3 offered when W1 begins, W4
    when W2 begins; each expires unanswered when the week before it begins; finished when W4
    is over."""
    async with running(time_skipping, ContractWorkflow, store.activities()) as queue:
        handle, created = await create(time_skipping, queue, weeks=4)
        assert created.state is ContractState.active and created.answer_by is None
        result = await handle.result()

    w1 = created.first_week
    offers = store.calls.of(OFFER)
    assert [c.step.week for c in offers] == [w1 + 2 * WEEK, w1 + 3 * WEEK]
    for call, begins in zip(offers, (w1, w1 + WEEK), strict=True):
        assert near(call.now, week_start(begins, ZONE)), call
    expiries = store.calls.of(EXPIRE)
    assert [c.now.date() for c in expiries] == [
        week_start(w1 + WEEK, ZONE).date(),
        week_start(w1 + 2 * WEEK, ZONE).date(),
    ]
    assert {w.state for w in store.weeks.values() if w.week >= w1 + 2 * WEEK} == {
        ContractWeekState.expired
    }
    [close] = store.calls.of("close_contract")
    assert close.step.state is ContractState.finished
    assert near(close.now, week_start(w1 + 4 * WEEK, ZONE))
    assert result is not None and result.state is ContractState.finished


async def test_a_teachers_answer_is_recorded_by_the_flow_and_returned(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6. W3 offered: the Chinese teacher agrees (booked), the foreign teacher
    declines; a second answer gets the store's refusal; nothing is left to expire."""
    async with running(time_skipping, ContractWorkflow, store.activities()) as queue:
        handle, created = await create(time_skipping, queue, weeks=3)
        w3 = created.first_week + 2 * WEEK
        await skip_to(time_skipping, week_start(created.first_week, ZONE) + SECOND)
        await store.calls.wait_for(OFFER)
        booked = await handle.execute_update(ContractWorkflow.answer_week, teacher(CHINESE, w3))
        assert booked.state is ContractWeekState.booked
        declined = await handle.execute_update(
            ContractWorkflow.answer_week, teacher(FOREIGN, w3, agree=False)
        )
        assert declined.state is ContractWeekState.declined
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(ContractWorkflow.answer_week, teacher(CHINESE, w3))
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "contract_week_answered"
        assert (await handle.query(ContractWorkflow.state)).awaiting_weeks == []
        result = await handle.result()
    assert store.calls.of(EXPIRE) == []
    assert result is not None and result.state is ContractState.finished


async def test_a_one_week_contract_books_one_week_and_finishes_when_it_is_over(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6, SD-7"""
    async with running(time_skipping, ContractWorkflow, store.activities()) as queue:
        handle, created = await create(time_skipping, queue, weeks=1)
        result = await handle.result()
    assert store.calls.of(OFFER) == []
    assert len(store.weeks) == 2
    [close] = store.calls.of("close_contract")
    assert near(close.now, week_start(created.first_week + WEEK, ZONE))
    assert result is not None and result.state is ContractState.finished


async def test_a_long_contract_continues_as_new_with_the_weeks_awaiting(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6, SD-7. An open-ended contract with two weeks offered per run: after W3 and
    W4 the run continues as new; the next run knows W4 awaits its answer, expires it on time
    and offers W5."""
    client = time_skipping.client
    async with running(time_skipping, ContractWorkflow, store.activities()) as queue:
        first, created = await create(time_skipping, queue, weeks=None, weeks_per_run=2)
        w1 = created.first_week
        await skip_to(time_skipping, week_start(w1 + WEEK, ZONE) + SECOND)
        latest = client.get_workflow_handle_for(ContractWorkflow.run, first.id)
        assert (await latest.describe()).run_id != first.first_execution_run_id
        old = client.get_workflow_handle(first.id, run_id=first.first_execution_run_id)
        assert (await old.describe()).status is WorkflowExecutionStatus.CONTINUED_AS_NEW

        carried = await latest.query(ContractWorkflow.state)
        assert (carried.weeks_booked, carried.next_week) == (4, w1 + 4 * WEEK)
        assert [(w.week, w.state) for w in carried.awaiting_weeks] == [
            (w1 + 3 * WEEK, ContractWeekState.awaiting)
        ] * 2

        await skip_to(time_skipping, week_start(w1 + 2 * WEEK, ZONE) + SECOND)
        ended = await latest.execute_update(ContractWorkflow.terminate, Termination(actor=ACTOR))
        result = await latest.result()

    offers = store.calls.of(OFFER)
    assert [c.step.week for c in offers] == [w1 + 2 * WEEK, w1 + 3 * WEEK, w1 + 4 * WEEK]
    assert near(offers[2].now, week_start(w1 + 2 * WEEK, ZONE))
    assert offers[0].run_id == offers[1].run_id != offers[2].run_id
    assert store.weeks[(w1 + 3 * WEEK, Role.foreign)].state is ContractWeekState.expired
    assert ended.state is ContractState.terminated
    assert result is not None and result.state is ContractState.terminated


async def test_terminating_between_weeks_stops_the_loop_at_once(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6. Terminated in the week before W1: closed then, and W3, due when W1
    begins, is never offered."""
    async with running(time_skipping, ContractWorkflow, store.activities()) as queue:
        handle, created = await create(time_skipping, queue, weeks=10)
        middle = week_start(created.first_week, ZONE) - timedelta(days=3)
        await skip_to(time_skipping, middle)
        ended = await handle.execute_update(ContractWorkflow.terminate, Termination(actor=ACTOR))
        await handle.result()
    assert store.calls.of(OFFER) == []
    [close] = store.calls.of("close_contract")
    assert close.step.state is ContractState.terminated
    assert near(close.now, middle)
    assert ended.state is ContractState.terminated


async def answer_in_time(handle: Handle, update: "asyncio.Task[Any]") -> Any:
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


async def test_a_week_answer_arriving_while_the_termination_is_recorded_is_refused(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6. W3 awaits its answers; while the flow records the LP's termination, a
    teacher's yes arrives. The teacher should hear contract_closed, the flow end terminated."""
    async with running(time_skipping, ContractWorkflow, store.activities()) as queue:
        handle, created = await create(time_skipping, queue, weeks=4)
        w3 = created.first_week + 2 * WEEK
        await skip_to(time_skipping, week_start(created.first_week, ZONE) + SECOND)
        await store.calls.wait_for(OFFER)
        store.close_gate = asyncio.Event()
        ending = asyncio.create_task(
            handle.execute_update(ContractWorkflow.terminate, Termination(actor=ACTOR))
        )
        await store.calls.wait_for("close_contract")
        late = asyncio.create_task(
            handle.execute_update(ContractWorkflow.answer_week, teacher(CHINESE, w3))
        )
        await asyncio.sleep(0.5)
        store.close_gate.set()
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await answer_in_time(handle, late)
        assert (await ending).state is ContractState.terminated
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "contract_closed"
    assert store.calls.of(ANSWER) == []


async def test_a_termination_arriving_while_the_contract_finishes_is_answered(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6. The last week is over and the flow is recording that; the LP's
    termination, accepted because the contract still looks active, should be answered
    (refused as contract_closed) and the flow end finished."""
    async with running(time_skipping, ContractWorkflow, store.activities()) as queue:
        handle, created = await create(time_skipping, queue, weeks=1)
        store.close_gate = asyncio.Event()
        await skip_to(time_skipping, week_start(created.first_week + WEEK, ZONE) + SECOND)
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


async def test_a_termination_arriving_while_the_last_week_of_a_run_is_offered_ends_it(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6. One week offered per run: while W3, the run's last offer, is recorded,
    the LP terminates. The run should not continue as new but close the contract terminated
    and answer the LP."""
    async with running(time_skipping, ContractWorkflow, store.activities()) as queue:
        handle, created = await create(time_skipping, queue, weeks=None, weeks_per_run=1)
        store.offer_gate = asyncio.Event()
        await skip_to(time_skipping, week_start(created.first_week, ZONE) + SECOND)
        await store.calls.wait_for(OFFER)
        ending = asyncio.create_task(
            handle.execute_update(ContractWorkflow.terminate, Termination(actor=ACTOR))
        )
        await asyncio.sleep(0.5)
        store.offer_gate.set()
        ended = await answer_in_time(handle, ending)
        described = await handle.describe()
    assert ended.state is ContractState.terminated
    assert described.run_id == handle.result_run_id
    assert described.status is WorkflowExecutionStatus.COMPLETED
    [close] = store.calls.of("close_contract")
    assert close.step.state is ContractState.terminated


async def continued(env: WorkflowEnvironment, store: FakeContracts) -> ContractInput:
    """The input of an open-ended contract's second run: W1 and W2 booked, W3 awaiting its
    teachers' answers, W4 due to be offered when W2 begins."""
    contract = await contract_input(env, weeks=None)
    w1 = contract.first_week
    store.input, store.view = contract, contract_view(contract, await env.get_current_time())
    history = [
        *store._week(w1, ContractWeekState.booked),
        *store._week(w1 + WEEK, ContractWeekState.booked),
    ]
    awaiting = store._week(w1 + 2 * WEEK, ContractWeekState.awaiting)
    progress = Progress(
        view=store.view,
        next_week=w1 + 3 * WEEK,
        weeks_booked=3,
        history=history + awaiting,
        next_booking_at=week_start(w1 + WEEK, ZONE),
        last_week_ends_at=week_start(w1 + 3 * WEEK, ZONE),
        weekly_answers=True,
        awaiting=awaiting,
    )
    return contract.model_copy(update={"progress": progress})


async def first_task_update(
    env: WorkflowEnvironment, store: FakeContracts, update: Callable[[Handle], Any]
) -> tuple[Handle, Any]:
    """A continued run started with no worker polling, so that `update` reaches the flow in its
    very first workflow task; what the update returned (or raised)."""
    queue = flow_id("flows")
    handle = await env.client.start_workflow(
        ContractWorkflow.run, await continued(env, store), id=flow_id("contract"), task_queue=queue
    )
    sent = asyncio.create_task(update(handle))
    await asyncio.sleep(0.5)
    worker = Worker(
        env.client,
        task_queue=queue,
        workflows=[ContractWorkflow],
        activities=store.activities(),
        workflow_runner=STRICT_SANDBOX,
    )
    async with worker:
        done, _ = await asyncio.wait([sent], timeout=5)
        assert done, "the update was never answered"
        if (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
            await handle.terminate()
    return handle, await asyncio.gather(sent, return_exceptions=True)


async def test_a_week_answered_in_the_first_task_of_a_continued_run_is_recorded(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6. A teacher's yes to W3, carried over continue-as-new as awaiting, reaches
    the next run before its `run` began: it is booked, not refused as closed."""

    def agree(handle: Handle) -> Any:
        assert store.input is not None
        w3 = store.input.first_week + 2 * WEEK
        return handle.execute_update(ContractWorkflow.answer_week, teacher(CHINESE, w3))

    _, [booked] = await first_task_update(time_skipping, store, agree)
    assert isinstance(booked, WeekBooking), booked
    assert booked.state is ContractWeekState.booked


async def test_a_termination_in_the_first_task_of_a_continued_run_closes_the_contract(
    time_skipping: WorkflowEnvironment, store: FakeContracts
) -> None:
    """covers: TCH-6. The LP terminates a contract as its next run starts: accepted and
    closed, not refused as already closed."""

    def terminate(handle: Handle) -> Any:
        return handle.execute_update(ContractWorkflow.terminate, Termination(actor=ACTOR))

    _, [ended] = await first_task_update(time_skipping, store, terminate)
    assert isinstance(ended, ContractView), ended
    assert ended.state is ContractState.terminated
    [close] = store.calls.of("close_contract")
    assert close.step.state is ContractState.terminated
