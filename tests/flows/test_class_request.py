"""The class request flow (求课) with its store activities replaced by doubles: the teacher's
refused approval, the deadline to the second, the expired-at-once request, the answer that
arrives while another is being booked.

covers: TCH-3, TCH-4, LP-6
"""

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from domain.class_request import (
    Approval,
    ApproveRequest,
    ClassRequestInput,
    CreateRequest,
    Rejection,
    ReleaseRequest,
    RequestView,
)
from domain.errors import InsufficientBalance, TeacherBusy
from domain.payment import Payment
from domain.rules import BookingRules, request_deadline
from domain.words import Asset, CourseType, RequestState
from tests.conftest import settled_history
from tests.flows.support import ACTOR, Calls, flow_id, refusal, running, skip_to
from workflows.class_request import ClassRequestWorkflow

RULES = BookingRules()
TEACHER = ACTOR.model_copy(update={"channel": "teacher", "id": "7"})
APPROVAL = Approval(actor=TEACHER)
SECOND = timedelta(seconds=1)


class FakeRequests:
    """The three store steps of a request, in memory, as the real ones answer."""

    def __init__(self) -> None:
        self.calls = Calls()
        self.view: RequestView | None = None
        self.hold_refusal: Exception | None = None
        self.deadline_shift = timedelta(0)
        self.approval_failures: list[Exception] = []
        self.approval_gate: asyncio.Event | None = None
        self.release_gate: asyncio.Event | None = None

    @activity.defn(name="hold_request_payment")
    async def hold(self, step: CreateRequest) -> RequestView:
        self.calls.note(step)
        if self.hold_refusal is not None:
            raise self.hold_refusal
        request = step.request
        deadline = request_deadline(step.now, request.start_at, RULES) + self.deadline_shift
        self.view = RequestView(
            id=request.request_id,
            student_id=request.student_id,
            teacher_id=request.teacher_id,
            start_at=request.start_at,
            course_type=request.course_type,
            state=RequestState.pending,
            payment_asset=Asset.credit,
            payment_key=request.course_type.value,
            payment_amount=1,
            deadline=deadline,
            keep_slot=None,
            class_id=None,
            reason=None,
            channel=request.actor.channel.value,
            actor_id=request.actor.id,
            created_at=step.now,
            updated_at=step.now,
        )
        return self.view

    @activity.defn(name="book_approved_request")
    async def book(self, step: ApproveRequest) -> RequestView:
        self.calls.note(step)
        if self.approval_gate is not None:
            await self.approval_gate.wait()
        if self.approval_failures:
            raise self.approval_failures.pop(0)
        assert self.view is not None
        self.view = self.view.model_copy(
            update={
                "state": RequestState.approved,
                "keep_slot": step.approval.keep_slot,
                "class_id": 500,
                "updated_at": step.now,
            }
        )
        return self.view

    @activity.defn(name="release_request_hold")
    async def release(self, step: ReleaseRequest) -> RequestView:
        self.calls.note(step)
        if self.release_gate is not None:
            await self.release_gate.wait()
        assert self.view is not None
        self.view = self.view.model_copy(
            update={"state": step.state, "reason": step.reason, "updated_at": step.now}
        )
        return self.view

    def activities(self) -> list[Callable[..., Any]]:
        return [self.hold, self.book, self.release]


@pytest.fixture
def store() -> FakeRequests:
    return FakeRequests()


async def start(
    env: WorkflowEnvironment, queue: str, ahead: timedelta
) -> WorkflowHandle[ClassRequestWorkflow, RequestView | None]:
    """Start a request for a class `ahead` of now, as the API does."""
    now = await env.get_current_time()
    start = (now + ahead).replace(minute=0, second=0, microsecond=0)
    request = ClassRequestInput(
        request_id=1,
        student_id=2,
        teacher_id=7,
        start_at=start,
        course_type=CourseType.major,
        payment=Payment(),
        actor=ACTOR,
    )
    return await env.client.start_workflow(
        ClassRequestWorkflow.run, request, id=flow_id("class-request"), task_queue=queue
    )


async def ask(
    env: WorkflowEnvironment, queue: str, ahead: timedelta
) -> tuple[WorkflowHandle[ClassRequestWorkflow, RequestView | None], RequestView]:
    """Start a request as the API does, and wait until it is held."""
    handle = await start(env, queue, ahead)
    return handle, await handle.execute_update(ClassRequestWorkflow.submitted)


async def test_a_refused_approval_fails_the_request_and_gives_the_hold_back(
    time_skipping: WorkflowEnvironment, store: FakeRequests
) -> None:
    """covers: TCH-3. The teacher approves but is busy by then: the store refuses, the refusal
    is not retried, the teacher hears the refusal's own code, and the hold is released."""
    store.approval_failures = [refusal(TeacherBusy("the teacher has a class then", teacher_id=7))]
    async with running(time_skipping, ClassRequestWorkflow, store.activities()) as queue:
        handle, _ = await ask(time_skipping, queue, timedelta(days=2))
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await handle.execute_update(ClassRequestWorkflow.approve, Approval(actor=TEACHER))
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "teacher_busy"
        assert cause.details[0]["status"] == 409
        result = await handle.result()

    assert [c.attempt for c in store.calls.of("book_approved_request")] == [1]
    [release] = store.calls.of("release_request_hold")
    assert (release.step.state, release.step.reason) == (RequestState.failed, "teacher_busy")
    assert result is not None and result.state is RequestState.failed


async def test_a_failed_approval_attempt_is_retried_and_books_once(
    time_skipping: WorkflowEnvironment, store: FakeRequests
) -> None:
    """covers: TCH-3. A lost connection is not a refusal: the step is tried again."""
    store.approval_failures = [ConnectionResetError("the database went away")]
    async with running(time_skipping, ClassRequestWorkflow, store.activities()) as queue:
        handle, _ = await ask(time_skipping, queue, timedelta(days=2))
        approved = await handle.execute_update(
            ClassRequestWorkflow.approve, Approval(actor=TEACHER)
        )
        await handle.result()
    assert approved.state is RequestState.approved
    assert [c.attempt for c in store.calls.of("book_approved_request")] == [1, 2]
    assert store.calls.of("release_request_hold") == []


@pytest.mark.parametrize(
    ("ahead", "bound"),
    [(timedelta(days=3), "created + 24 h"), (timedelta(hours=10), "start - 2 h")],
)
async def test_an_unanswered_request_expires_exactly_at_its_deadline(
    time_skipping: WorkflowEnvironment, store: FakeRequests, ahead: timedelta, bound: str
) -> None:
    """covers: TCH-4, LP-6. Still pending one second before the deadline; released at it."""
    async with running(time_skipping, ClassRequestWorkflow, store.activities()) as queue:
        handle, held = await ask(time_skipping, queue, ahead)
        if bound == "created + 24 h":
            assert held.deadline == held.created_at + RULES.request_answer_within
        else:
            assert held.deadline == held.start_at - RULES.request_answer_before_start

        await skip_to(time_skipping, held.deadline - SECOND)
        still = await handle.query(ClassRequestWorkflow.state)
        assert still is not None and still.state is RequestState.pending
        assert store.calls.of("release_request_hold") == []

        result = await handle.result()
    [release] = store.calls.of("release_request_hold")
    assert release.step.state is RequestState.expired
    assert held.deadline <= release.now < held.deadline + SECOND
    assert result is not None and result.state is RequestState.expired


async def test_an_approval_one_second_before_the_deadline_books(
    time_skipping: WorkflowEnvironment, store: FakeRequests
) -> None:
    """covers: TCH-3"""
    async with running(time_skipping, ClassRequestWorkflow, store.activities()) as queue:
        handle, held = await ask(time_skipping, queue, timedelta(days=3))
        await skip_to(time_skipping, held.deadline - SECOND)
        approved = await handle.execute_update(
            ClassRequestWorkflow.approve, Approval(actor=TEACHER)
        )
        await handle.result()
    assert approved.state is RequestState.approved
    [book] = store.calls.of("book_approved_request")
    assert book.now < held.deadline
    assert store.calls.of("release_request_hold") == []


async def test_a_request_whose_deadline_passed_while_it_was_held_expires_at_once(
    time_skipping: WorkflowEnvironment, store: FakeRequests
) -> None:
    """covers: LP-6. If holding the payment took past the deadline (a slow retry), the flow
    does not wait a negative time: it releases the hold at once."""
    store.deadline_shift = -timedelta(days=2)
    async with running(time_skipping, ClassRequestWorkflow, store.activities()) as queue:
        handle, held = await ask(time_skipping, queue, timedelta(days=3))
        assert held.deadline < held.created_at
        result = await handle.result()
    [release] = store.calls.of("release_request_hold")
    assert release.step.state is RequestState.expired
    assert release.now - held.created_at < SECOND
    assert result is not None and result.state is RequestState.expired


async def test_a_refused_hold_ends_the_flow_with_the_refusal(
    time_skipping: WorkflowEnvironment, store: FakeRequests
) -> None:
    """covers: LP-6. Not enough credit: the requester hears insufficient_balance, nothing is
    held, and there is nothing to release."""
    store.hold_refusal = refusal(InsufficientBalance("no credit", asset="credit"))
    async with running(time_skipping, ClassRequestWorkflow, store.activities()) as queue:
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await ask(time_skipping, queue, timedelta(days=2))
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "insufficient_balance"
    assert store.calls.names() == ["hold_request_payment"]


async def test_a_hold_refused_before_the_requester_asks_still_answers_the_refusal(
    time_skipping: WorkflowEnvironment, store: FakeRequests
) -> None:
    """covers: LP-6. The hold is refused, and the flow has finished that step, before the
    API's `submitted` update arrives (the two are separate calls): the update still hears the
    refusal instead of finding the flow over, and the flow then ends."""
    store.hold_refusal = refusal(InsufficientBalance("no credit", asset="credit"))
    async with running(time_skipping, ClassRequestWorkflow, store.activities()) as queue:
        handle = await start(time_skipping, queue, timedelta(days=2))
        await store.calls.wait_for("hold_request_payment")
        await settled_history(time_skipping.client, handle.id, handle.result_run_id)
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await handle.execute_update(ClassRequestWorkflow.submitted)
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "insufficient_balance"
        assert await handle.result() is None
    assert store.calls.names() == ["hold_request_payment"]


async def test_a_second_answer_while_the_first_is_booking_is_refused(
    time_skipping: WorkflowEnvironment, store: FakeRequests
) -> None:
    """covers: TCH-3, TCH-4, LP-6. The teacher approved; a rejection or a withdrawal arriving
    while the class is being booked is refused as request_closed and releases nothing."""
    store.approval_gate = asyncio.Event()
    async with running(time_skipping, ClassRequestWorkflow, store.activities()) as queue:
        handle, _ = await ask(time_skipping, queue, timedelta(days=2))
        approving = asyncio.create_task(
            handle.execute_update(ClassRequestWorkflow.approve, Approval(actor=TEACHER))
        )
        await store.calls.wait_for("book_approved_request")
        for late in (ClassRequestWorkflow.reject, ClassRequestWorkflow.withdraw):
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(late, Rejection(actor=ACTOR))
            cause = refused.value.cause
            assert isinstance(cause, ApplicationError) and cause.type == "request_closed"
        store.approval_gate.set()
        approved = await approving
        await handle.result()
    assert approved.state is RequestState.approved
    assert store.calls.of("release_request_hold") == []


async def test_a_rejection_releases_with_the_teachers_reason(
    time_skipping: WorkflowEnvironment, store: FakeRequests
) -> None:
    """covers: TCH-4"""
    async with running(time_skipping, ClassRequestWorkflow, store.activities()) as queue:
        handle, _ = await ask(time_skipping, queue, timedelta(days=2))
        rejected = await handle.execute_update(
            ClassRequestWorkflow.reject, Rejection(actor=TEACHER, reason="on holiday")
        )
        await handle.result()
    [release] = store.calls.of("release_request_hold")
    assert (release.step.state, release.step.reason) == (RequestState.rejected, "on holiday")
    assert (rejected.state, rejected.reason) == (RequestState.rejected, "on holiday")
    assert store.calls.of("book_approved_request") == []


async def test_an_approval_arriving_while_the_expiry_is_recorded_is_refused(
    time_skipping: WorkflowEnvironment, store: FakeRequests
) -> None:
    """covers: TCH-3, LP-6. The deadline passed and the hold is being released when the teacher
    approves: request_closed, and no class is booked."""
    store.release_gate = asyncio.Event()
    async with running(time_skipping, ClassRequestWorkflow, store.activities()) as queue:
        handle, held = await ask(time_skipping, queue, timedelta(days=3))
        await skip_to(time_skipping, held.deadline + SECOND)
        await store.calls.wait_for("release_request_hold")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(ClassRequestWorkflow.approve, Approval(actor=TEACHER))
        store.release_gate.set()
        result = await handle.result()
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "request_closed"
    assert store.calls.of("book_approved_request") == []
    assert result is not None and result.state is RequestState.expired
