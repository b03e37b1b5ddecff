"""The weekly booking run (自动约 SD-6, exclusive teachers SD-1) with its store activities replaced
by doubles: every student's first wish before anyone's second, chunk by chunk, and a refused
start.

covers: SD-6, SD-1, LP-1
"""

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from domain.auto_booking import (
    BookChunk,
    ChunkOutcome,
    FinishRun,
    RunKind,
    RunRequest,
    RunState,
    RunView,
    StartRun,
)
from domain.errors import NoExclusiveTeacher
from tests.flows.support import ACTOR, Calls, flow_id, refusal, running
from workflows.auto_booking import WeeklyBookingWorkflow

CHUNK = "book_run_chunk"


def books(position: int, round_: int) -> bool:
    """Which wishes the double can book: a fixed pattern, so that totals can be checked."""
    return (position + round_) % 3 != 0


class FakeRuns:
    def __init__(self, students: int, rounds: int) -> None:
        self.calls = Calls()
        self.students, self.rounds = students, rounds
        self.start_refusal: Exception | None = None
        self.view: RunView | None = None

    @activity.defn(name="start_booking_run")
    async def start(self, step: StartRun) -> RunView:
        self.calls.note(step)
        if self.start_refusal is not None:
            raise self.start_refusal
        self.view = RunView(
            id=3,
            kind=step.request.kind,
            week=step.request.week or date(2030, 1, 14),
            student_id=step.request.student_id,
            state=RunState.running,
            students=self.students,
            rounds=self.rounds,
            booked=0,
            failed=0,
            flow_id=step.flow_id,
            channel=step.request.actor.channel.value,
            actor_id=step.request.actor.id,
            started_at=step.now,
            finished_at=None,
        )
        return self.view

    @activity.defn(name=CHUNK)
    async def chunk(self, step: BookChunk) -> ChunkOutcome:
        self.calls.note(step)
        positions = range(step.first, min(step.first + step.size, self.students))
        booked = sum(books(p, step.round) for p in positions)
        return ChunkOutcome(students=len(positions), booked=booked, failed=len(positions) - booked)

    @activity.defn(name="finish_booking_run")
    async def finish(self, step: FinishRun) -> RunView:
        self.calls.note(step)
        assert self.view is not None
        return self.view.model_copy(update={"state": RunState.done, "finished_at": step.now})

    def activities(self) -> list[Callable[..., Any]]:
        return [self.start, self.chunk, self.finish]


async def run(
    env: WorkflowEnvironment, store: FakeRuns, request: RunRequest
) -> tuple[RunView, RunView | None]:
    async with running(env, WeeklyBookingWorkflow, store.activities()) as queue:
        handle = await env.client.start_workflow(
            WeeklyBookingWorkflow.run, request, id=flow_id("auto-booking"), task_queue=queue
        )
        started = await handle.execute_update(WeeklyBookingWorkflow.started)
        return started, await handle.result()


@pytest.mark.parametrize(("students", "chunk"), [(2500, 1000), (1000, 1000), (7, 3), (1, 1000)])
async def test_each_wish_position_is_booked_for_everyone_before_the_next(
    time_skipping: WorkflowEnvironment, students: int, chunk: int
) -> None:
    """covers: SD-6, LP-1. Fairness: round r books every student's r-th wish, chunk after chunk
    in the run's fair order, before any student's (r+1)-th."""
    rounds = 3
    store = FakeRuns(students, rounds)
    request = RunRequest(kind=RunKind.auto, actor=ACTOR, chunk=chunk)
    _, result = await run(time_skipping, store, request)

    chunks = [(c.step.round, c.step.first, c.step.size) for c in store.calls.of(CHUNK)]
    assert chunks == [
        (r, first, chunk) for r in range(1, rounds + 1) for first in range(0, students, chunk)
    ]
    assert store.calls.names()[-1] == "finish_booking_run"
    assert result is not None and result.state is RunState.done


async def test_progress_adds_up_every_chunk(time_skipping: WorkflowEnvironment) -> None:
    """covers: SD-6. Ops read the run's progress from the flow while it books."""
    students, rounds = 2500, 2
    store = FakeRuns(students, rounds)
    async with running(time_skipping, WeeklyBookingWorkflow, store.activities()) as queue:
        handle = await time_skipping.client.start_workflow(
            WeeklyBookingWorkflow.run,
            RunRequest(kind=RunKind.auto, actor=ACTOR, chunk=1000),
            id=flow_id("auto-booking"),
            task_queue=queue,
        )
        await handle.result()
        progress = await handle.query(WeeklyBookingWorkflow.state)
    expected = sum(books(p, r) for r in range(1, rounds + 1) for p in range(students))
    assert 0 < expected < rounds * students  # the double both books and fails
    assert (progress.round, progress.students_done) == (rounds, students)
    assert (progress.booked, progress.failed) == (expected, rounds * students - expected)


async def test_a_run_with_nobody_to_book_finishes_at_once(
    time_skipping: WorkflowEnvironment,
) -> None:
    """covers: SD-1. No exclusive student has wishes this week: no chunk, the run is done."""
    store = FakeRuns(students=0, rounds=0)
    _, result = await run(time_skipping, store, RunRequest(kind=RunKind.exclusive, actor=ACTOR))
    assert store.calls.names() == ["start_booking_run", "finish_booking_run"]
    assert result is not None and result.state is RunState.done


async def test_a_refused_start_is_the_callers_answer_and_books_nothing(
    time_skipping: WorkflowEnvironment,
) -> None:
    """covers: SD-1. Staff start a run for a student with no exclusive teacher."""
    store = FakeRuns(students=1, rounds=1)
    store.start_refusal = refusal(NoExclusiveTeacher("no exclusive teacher", student_id=2))
    request = RunRequest(kind=RunKind.exclusive, actor=ACTOR, student_id=2, week=date(2030, 1, 14))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await run(time_skipping, store, request)
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "no_exclusive_teacher"
    assert store.calls.names() == ["start_booking_run"]
