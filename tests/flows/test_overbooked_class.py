"""The over-booked class's flow (超约) with its store activities replaced by doubles: the retry
loop for a waiting student, its give-up at start + 10 min, the no-show, the early wake-up.

covers: SD-5a, SD-5c, CLS-2
"""

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.errors import NotFound
from domain.overbooking import (
    SLOT,
    ClassStep,
    MatchSource,
    OverbookedClassInput,
    OverbookingRules,
    OverbookKind,
    OverbookState,
    OverbookView,
    StudentEntered,
    TeacherChanged,
)
from domain.words import ClassLabel, ClassState, CourseType
from tests.flows.support import ACTOR, Call, Calls, flow_id, refusal, running, skip_to
from workflows.overbooked_class import OverbookedClassWorkflow

RULES = OverbookingRules()
SECOND = timedelta(seconds=1)
MATCH = "match_waiting_student"


class FakeClass:
    """One over-booked class as store.overbooking keeps it. A teacher frees up at `free_at`
    (never if None); the student enters at `entered_at` (never if None)."""

    def __init__(self) -> None:
        self.calls = Calls()
        self.view: OverbookView | None = None
        self.free_at: datetime | None = None
        self.entered_at: datetime | None = None
        self.exists = True

    def book(self, start_at: datetime) -> OverbookedClassInput:
        self.view = OverbookView(
            class_id=60,
            student_id=2,
            kind=OverbookKind.overbook,
            course_type=CourseType.trial,
            start_at=start_at,
            state=OverbookState.booked,
            class_state=ClassState.booked,
            label=None,
            teacher_id=None,
            timeslot_id=None,
            matched_from=None,
            entered_at=None,
            matched_at=None,
            wait_until=start_at + RULES.wait_for_teacher,
            refunded=False,
        )
        return OverbookedClassInput(
            class_id=60,
            student_id=2,
            start_at=start_at,
            wait_until=self.view.wait_until,
            retry_every=RULES.retry_every,
            actor=ACTOR,
        )

    def _current(self, now: datetime) -> OverbookView:
        if not self.exists:
            raise refusal(NotFound("class", 60))
        assert self.view is not None
        entered = self.entered_at
        if self.view.state is OverbookState.booked and entered is not None and entered <= now:
            self.view = self.view.model_copy(
                update={"state": OverbookState.waiting, "entered_at": entered}
            )
        return self.view

    @activity.defn(name=MATCH)
    async def match(self, step: ClassStep) -> OverbookView:
        self.calls.note(step)
        view = self._current(step.now)
        if view.state is OverbookState.waiting and self.free_at and self.free_at <= step.now:
            self.view = view.model_copy(
                update={
                    "state": OverbookState.matched,
                    "teacher_id": 9,
                    "timeslot_id": 90,
                    "matched_from": MatchSource.general,
                    "matched_at": step.now,
                }
            )
        return self.view or view

    @activity.defn(name="give_up_waiting")
    async def give_up(self, step: ClassStep) -> OverbookView:
        self.calls.note(step)
        view = self._current(step.now)
        if view.state is OverbookState.waiting:
            self.view = view.model_copy(
                update={
                    "state": OverbookState.failed,
                    "class_state": ClassState.cancelled,
                    "refunded": True,
                }
            )
        return self.view or view

    @activity.defn(name="close_class")
    async def close(self, step: ClassStep) -> OverbookView:
        self.calls.note(step)
        view = self._current(step.now)
        label = ClassLabel.as_scheduled if view.teacher_id else ClassLabel.student_no_show
        self.view = view.model_copy(
            update={
                "state": OverbookState.finished,
                "class_state": ClassState.finished,
                "label": label,
            }
        )
        return self.view

    @activity.defn(name="read_class")
    async def read(self, step: ClassStep) -> OverbookView:
        self.calls.note(step)
        return self._current(step.now)

    def match_by_the_api(self, teacher_id: int, now: datetime) -> TeacherChanged:
        """What the API's match at classroom entry commits, and the signal it sends after."""
        assert self.view is not None
        self.view = self.view.model_copy(
            update={
                "state": OverbookState.matched,
                "teacher_id": teacher_id,
                "timeslot_id": 70,
                "matched_from": MatchSource.overbook_pool,
                "entered_at": now,
                "matched_at": now,
            }
        )
        return TeacherChanged(class_id=self.view.class_id, teacher_id=teacher_id, changed_at=now)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.match, self.give_up, self.close, self.read]


@pytest.fixture
def store() -> FakeClass:
    return FakeClass()


async def book_class(
    env: WorkflowEnvironment, queue: str, store: FakeClass, *, entered_after: timedelta | None
) -> tuple[WorkflowHandle[OverbookedClassWorkflow, OverbookView | None], OverbookedClassInput]:
    """A class starting in an hour; the student enters `entered_after` its start, or never."""
    now = await env.get_current_time()
    booked = store.book(now.replace(minute=0, second=0, microsecond=0) + 2 * SLOT)
    if entered_after is not None:
        store.entered_at = booked.start_at + entered_after
    handle = await env.client.start_workflow(
        OverbookedClassWorkflow.run, booked, id=flow_id("overbook"), task_queue=queue
    )
    return handle, booked


def offsets(calls: list[Call], start: datetime) -> list[timedelta]:
    """When each call was made, from the start, to the second."""
    return [timedelta(seconds=round((c.now - start).total_seconds())) for c in calls]


async def test_a_student_left_waiting_is_retried_every_30_s_then_refunded(
    time_skipping: WorkflowEnvironment, store: FakeClass
) -> None:
    """covers: SD-5c, CLS-2. No teacher frees up: the match is tried at the start and every
    30 s until start + 10 min, then the class fails with a refund and is not closed again."""
    async with running(time_skipping, OverbookedClassWorkflow, store.activities()) as queue:
        handle, booked = await book_class(time_skipping, queue, store, entered_after=timedelta(0))
        result = await handle.result()

    tries = store.calls.of(MATCH)
    expected = [
        RULES.retry_every * i for i in range(RULES.wait_for_teacher // RULES.retry_every + 1)
    ]
    assert offsets(tries, booked.start_at) == expected
    [gave_up] = store.calls.of("give_up_waiting")
    assert booked.wait_until <= gave_up.now < booked.wait_until + SECOND
    assert store.calls.of("close_class") == []
    assert result is not None and result.state is OverbookState.failed and result.refunded


async def test_a_teacher_freeing_up_is_taken_on_the_next_try_and_the_class_closes_at_its_end(
    time_skipping: WorkflowEnvironment, store: FakeClass
) -> None:
    """covers: SD-5c, CLS-2"""
    async with running(time_skipping, OverbookedClassWorkflow, store.activities()) as queue:
        handle, booked = await book_class(time_skipping, queue, store, entered_after=timedelta(0))
        store.free_at = booked.start_at + timedelta(seconds=95)
        result = await handle.result()

    assert offsets(store.calls.of(MATCH), booked.start_at) == [
        timedelta(seconds=s) for s in (0, 30, 60, 90, 120)
    ]
    assert store.calls.of("give_up_waiting") == []
    [close] = store.calls.of("close_class")
    assert booked.start_at + SLOT <= close.now < booked.start_at + SLOT + SECOND
    assert result is not None and result.label is ClassLabel.as_scheduled


async def test_a_student_who_never_enters_is_a_no_show_without_a_refund(
    time_skipping: WorkflowEnvironment, store: FakeClass
) -> None:
    """covers: SD-5c. Nobody waits, so there is nothing to retry: the flow looks at the start
    and at the end of the wait, then closes the class at the end of its half hour."""
    async with running(time_skipping, OverbookedClassWorkflow, store.activities()) as queue:
        handle, booked = await book_class(time_skipping, queue, store, entered_after=None)
        result = await handle.result()

    assert offsets(store.calls.of(MATCH), booked.start_at) == [timedelta(0), RULES.wait_for_teacher]
    assert store.calls.of("give_up_waiting") == []
    assert offsets(store.calls.of("close_class"), booked.start_at) == [SLOT]
    assert result is not None and result.label is ClassLabel.student_no_show
    assert not result.refunded


async def test_a_student_entering_late_wakes_the_flow_at_once(
    time_skipping: WorkflowEnvironment, store: FakeClass
) -> None:
    """covers: CLS-2, SD-5c. The API found no teacher for a student entering at start + 3 min
    and tells the flow, which tries again then, not at the end of the wait."""
    entered_after = timedelta(minutes=3)
    async with running(time_skipping, OverbookedClassWorkflow, store.activities()) as queue:
        handle, booked = await book_class(time_skipping, queue, store, entered_after=entered_after)
        store.free_at = booked.start_at
        await skip_to(time_skipping, booked.start_at + entered_after)
        await handle.signal(
            OverbookedClassWorkflow.student_entered,
            StudentEntered(class_id=booked.class_id, entered_at=booked.start_at + entered_after),
        )
        result = await handle.result()

    tries = store.calls.of(MATCH)
    assert len(tries) == 2
    assert (
        booked.start_at + entered_after <= tries[1].now < booked.start_at + entered_after + SECOND
    )
    assert result is not None and result.teacher_id is not None


async def test_a_class_whose_booking_never_committed_ends_the_flow(
    time_skipping: WorkflowEnvironment, store: FakeClass
) -> None:
    """covers: SD-5a. The flow was started but the booking rolled back: nothing to close."""
    store.exists = False
    async with running(time_skipping, OverbookedClassWorkflow, store.activities()) as queue:
        handle, _ = await book_class(time_skipping, queue, store, entered_after=timedelta(0))
        result = await handle.result()
    assert result is None
    assert store.calls.names() == [MATCH]


async def test_a_match_told_before_the_start_is_read_at_once(
    time_skipping: WorkflowEnvironment, store: FakeClass
) -> None:
    """covers: CLS-2, SD-5c. The API matched the student at entry, before the start the flow
    sleeps until; told, the flow reads the class then and its state shows the teacher."""
    async with running(time_skipping, OverbookedClassWorkflow, store.activities()) as queue:
        handle, booked = await book_class(time_skipping, queue, store, entered_after=None)
        told = store.match_by_the_api(7, await time_skipping.get_current_time())
        await handle.signal(OverbookedClassWorkflow.teacher_changed, told)
        [read] = await store.calls.wait_for("read_class")
        assert read.now < booked.start_at
        async with asyncio.timeout(10):
            # A query is polled: nothing in the test is told when the flow's read is done.
            while (view := await handle.query(OverbookedClassWorkflow.state)) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert (view.teacher_id, view.state) == (7, OverbookState.matched)
        result = await handle.result()
    assert result is not None and result.label is ClassLabel.as_scheduled
    # The read ran inside the workflow task that heard the signal: a marker, no activity task.
    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert "read_class" not in scheduled
    assert any(e.HasField("marker_recorded_event_attributes") for e in history.events)


async def test_a_teacher_change_told_of_a_class_that_never_committed_ends_nothing_early(
    time_skipping: WorkflowEnvironment, store: FakeClass
) -> None:
    """covers: SD-5a. A read refused with class_not_found (run as a local activity, whose
    failure is the refusal itself) is a class that does not exist, as for every other step:
    the flow goes on to the start and ends there without failing."""
    async with running(time_skipping, OverbookedClassWorkflow, store.activities()) as queue:
        handle, _ = await book_class(time_skipping, queue, store, entered_after=None)
        told = store.match_by_the_api(7, await time_skipping.get_current_time())
        store.exists = False
        await handle.signal(OverbookedClassWorkflow.teacher_changed, told)
        result = await handle.result()
    assert result is None
    assert store.calls.names() == ["read_class", MATCH]
