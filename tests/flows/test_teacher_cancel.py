"""The teacher-cancel hold flow (TCH-5) with its store activities replaced by doubles that keep
the hold as the store does: the timer, an extension, fireman's end, the student's booking.

covers: TCH-5
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

from domain.errors import HoldClosed
from domain.rules import BookingRules
from domain.teacher_cancel import (
    CancelByTeacher,
    CloseHold,
    Ending,
    ExtendHold,
    Extension,
    HeldSlotBooked,
    HoldView,
    OfferedSlot,
    TeacherCancelInput,
)
from domain.words import HoldState, TimeslotState
from tests.flows.support import ACTOR, Calls, flow_id, refusal, running, skip_to
from workflows.teacher_cancel import TeacherCancelHoldWorkflow

RULES = BookingRules()
FIREMAN = ACTOR.model_copy(update={"channel": "fireman", "id": "fm-1"})
SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)


class FakeHolds:
    """One hold, kept as store.holds keeps it: closing closes whatever the expiry says; an
    extension is refused once the hold is over."""

    def __init__(self) -> None:
        self.calls = Calls()
        self.view: HoldView | None = None
        # Set to hold back an extension's answer after it committed (a slow or retried reply).
        self.extension_reply: asyncio.Event | None = None
        # Set to keep a close waiting, so that an update can arrive while it runs.
        self.close_gate: asyncio.Event | None = None

    @activity.defn(name="cancel_class_and_hold_offers")
    async def cancel(self, step: CancelByTeacher) -> HoldView:
        self.calls.note(step)
        cancel = step.cancel
        expires_at = step.now + RULES.teacher_cancel_hold
        self.view = HoldView(
            class_id=cancel.class_id,
            teacher_id=cancel.teacher_id,
            student_id=cancel.student_id,
            state=HoldState.holding,
            expires_at=expires_at,
            reason=cancel.reason,
            booked_class_id=None,
            offered=[
                OfferedSlot(id=i, start_at=at, state=TimeslotState.open, expires_at=expires_at)
                for i, at in enumerate(cancel.offered, start=1)
            ],
        )
        return self.view

    @activity.defn(name="close_hold")
    async def close(self, step: CloseHold) -> HoldView:
        self.calls.note(step)
        if self.close_gate is not None:
            await self.close_gate.wait()
        assert self.view is not None
        if self.view.state is HoldState.holding:
            self.view = self.view.model_copy(
                update={
                    "state": step.state,
                    "offered": [
                        s.model_copy(update={"state": TimeslotState.removed})
                        for s in self.view.offered
                    ],
                }
            )
        return self.view

    @activity.defn(name="extend_hold")
    async def extend(self, step: ExtendHold) -> HoldView:
        self.calls.note(step)
        assert self.view is not None
        if self.view.state is not HoldState.holding:
            raise refusal(HoldClosed("the hold is over", state=self.view.state.value))
        self.view = self.view.model_copy(update={"expires_at": step.until})
        committed = self.view
        if self.extension_reply is not None:
            await self.extension_reply.wait()
        return committed

    def activities(self) -> list[Callable[..., Any]]:
        return [self.cancel, self.close, self.extend]


@pytest.fixture
def store() -> FakeHolds:
    return FakeHolds()


Handle = WorkflowHandle[TeacherCancelHoldWorkflow, HoldView | None]


async def cancel_class(env: WorkflowEnvironment, queue: str) -> tuple[Handle, HoldView]:
    now = await env.get_current_time()
    day = now.replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    cancel = TeacherCancelInput(
        class_id=40,
        teacher_id=7,
        student_id=2,
        offered=[day, day + HOUR],
        reason="ill",
        actor=ACTOR,
    )
    handle = await env.client.start_workflow(
        TeacherCancelHoldWorkflow.run, cancel, id=flow_id("teacher-cancel"), task_queue=queue
    )
    return handle, await handle.execute_update(TeacherCancelHoldWorkflow.opened)


async def test_the_hold_expires_at_its_end_and_removes_what_is_left(
    time_skipping: WorkflowEnvironment, store: FakeHolds
) -> None:
    """Nobody books: one second before the end the slots are still held; at the end the timer
    closes the hold as expired."""
    async with running(time_skipping, TeacherCancelHoldWorkflow, store.activities()) as queue:
        handle, opened = await cancel_class(time_skipping, queue)
        assert [s.expires_at for s in opened.offered] == [opened.expires_at] * 2
        await skip_to(time_skipping, opened.expires_at - SECOND)
        assert store.calls.of("close_hold") == []
        result = await handle.result()
    [close] = store.calls.of("close_hold")
    assert close.step.state is HoldState.expired
    assert opened.expires_at <= close.now < opened.expires_at + SECOND
    assert result is not None and result.state is HoldState.expired
    assert {s.state for s in result.offered} == {TimeslotState.removed}


async def test_an_extension_moves_the_timer(
    time_skipping: WorkflowEnvironment, store: FakeHolds
) -> None:
    """Fireman extends an hour before the end: the old end passes, the hold stays; it expires
    at the new end."""
    async with running(time_skipping, TeacherCancelHoldWorkflow, store.activities()) as queue:
        handle, opened = await cancel_class(time_skipping, queue)
        await skip_to(time_skipping, opened.expires_at - HOUR)
        until = opened.expires_at + 6 * HOUR
        extended = await handle.execute_update(
            TeacherCancelHoldWorkflow.extend, Extension(until=until, actor=FIREMAN)
        )
        assert extended.expires_at == until
        await skip_to(time_skipping, opened.expires_at + HOUR)
        still = await handle.query(TeacherCancelHoldWorkflow.state)
        assert still is not None and still.state is HoldState.holding
        assert store.calls.of("close_hold") == []
        result = await handle.result()
    [close] = store.calls.of("close_hold")
    assert until <= close.now < until + SECOND
    assert result is not None and result.state is HoldState.expired


async def test_a_refused_extension_leaves_the_timer_as_it_was(
    time_skipping: WorkflowEnvironment, store: FakeHolds
) -> None:
    """The store refuses (the student booked in the meantime, say): fireman hears hold_closed
    and nothing else changes."""
    async with running(time_skipping, TeacherCancelHoldWorkflow, store.activities()) as queue:
        handle, opened = await cancel_class(time_skipping, queue)
        assert store.view is not None
        store.view = store.view.model_copy(update={"state": HoldState.booked})
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                TeacherCancelHoldWorkflow.extend,
                Extension(until=opened.expires_at + HOUR, actor=FIREMAN),
            )
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "hold_closed"
        await skip_to(time_skipping, opened.expires_at + SECOND)
        await handle.result()
    [close] = store.calls.of("close_hold")
    assert opened.expires_at <= close.now < opened.expires_at + SECOND


async def test_the_student_booking_an_offered_slot_ends_the_hold_without_the_timer(
    time_skipping: WorkflowEnvironment, store: FakeHolds
) -> None:
    """The booking removed the other slots in its own transaction; the flow only hears of it."""
    async with running(time_skipping, TeacherCancelHoldWorkflow, store.activities()) as queue:
        handle, opened = await cancel_class(time_skipping, queue)
        booked_slot = opened.offered[1].id
        await handle.signal(
            TeacherCancelHoldWorkflow.held_slot_booked,
            HeldSlotBooked(class_id=77, timeslot_id=booked_slot),
        )
        result = await handle.result()
    assert store.calls.of("close_hold") == []
    assert result is not None and result.state is HoldState.booked
    assert result.booked_class_id == 77
    assert {s.id: s.state for s in result.offered} == {
        s.id: TimeslotState.booked if s.id == booked_slot else TimeslotState.removed
        for s in opened.offered
    }


async def test_fireman_ends_the_hold_now(
    time_skipping: WorkflowEnvironment, store: FakeHolds
) -> None:
    async with running(time_skipping, TeacherCancelHoldWorkflow, store.activities()) as queue:
        handle, opened = await cancel_class(time_skipping, queue)
        await skip_to(time_skipping, opened.expires_at - 3 * HOUR)
        ended = await handle.execute_update(TeacherCancelHoldWorkflow.end, Ending(actor=FIREMAN))
        result = await handle.result()
    [close] = store.calls.of("close_hold")
    assert close.step.state is HoldState.ended and close.now < opened.expires_at
    assert ended.state is result.state is HoldState.ended  # type: ignore[union-attr]


async def test_an_extension_committed_before_the_end_wins_over_the_timer(
    time_skipping: WorkflowEnvironment, store: FakeHolds
) -> None:
    """Fireman extends one second before the end. The extension commits, but its answer
    reaches the flow only after the end (a slow reply, or a retry that gets the first result
    back). The hold stays held until the new end, as the store recorded."""
    store.extension_reply = asyncio.Event()
    async with running(time_skipping, TeacherCancelHoldWorkflow, store.activities()) as queue:
        handle, opened = await cancel_class(time_skipping, queue)
        await skip_to(time_skipping, opened.expires_at - SECOND)
        until = opened.expires_at + 6 * HOUR
        extending = asyncio.create_task(
            handle.execute_update(
                TeacherCancelHoldWorkflow.extend, Extension(until=until, actor=FIREMAN)
            )
        )
        await store.calls.wait_for("extend_hold")
        await skip_to(time_skipping, opened.expires_at + SECOND)
        await asyncio.sleep(0.5)  # the flow's timer would fire here
        store.extension_reply.set()
        extended = await extending
        assert extended.expires_at == until  # what fireman was told
        assert store.view is not None
        assert store.view.state is HoldState.holding, "the store closed the extended hold"
        state = await handle.query(TeacherCancelHoldWorkflow.state)
        assert state is not None and state.state is store.view.state
        await skip_to(time_skipping, until - SECOND)
        assert store.calls.of("close_hold") == []
        await handle.result()
    [close] = store.calls.of("close_hold")
    assert until <= close.now < until + SECOND


async def test_an_extension_arriving_while_the_expiry_is_recorded_is_refused(
    time_skipping: WorkflowEnvironment, store: FakeHolds
) -> None:
    """The end passed and the flow is closing the hold when fireman's extension arrives: it is
    refused as hold_closed, and the hold stays expired."""
    store.close_gate = asyncio.Event()
    async with running(time_skipping, TeacherCancelHoldWorkflow, store.activities()) as queue:
        handle, opened = await cancel_class(time_skipping, queue)
        await skip_to(time_skipping, opened.expires_at + SECOND)
        await store.calls.wait_for("close_hold")
        late = asyncio.create_task(
            handle.execute_update(
                TeacherCancelHoldWorkflow.extend,
                Extension(until=opened.expires_at + HOUR, actor=FIREMAN),
            )
        )
        await asyncio.sleep(0.5)
        store.close_gate.set()
        async with asyncio.timeout(5):
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await late
            result = await handle.result()
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "hold_closed"
    assert result is not None and result.state is HoldState.expired
