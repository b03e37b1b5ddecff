"""Weekly booking run: auto-booking (自动约, SD-6) and exclusive-teacher booking (SD-1).

A Schedule starts it every Monday (12:03 for auto-booking; 08:00, Level 7 at 00:00, for the
exclusive teachers), staff start it by hand for one student or for all. It fixes the run's
students in a fair order, then books round by round (every student's first wish, then second…),
chunk by chunk, one transaction each, and reports its progress as it goes: the `state` query
and the Web UI's current details. The per-student report stays in the database.
"""

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.auto_booking import WeeklyBookingActivities
    from domain.auto_booking import (
        BookChunk,
        FinishRun,
        RunProgress,
        RunRequest,
        RunView,
        StartRun,
    )
    from domain.refusal import Refusal
    from workflows.common import STORE_STEP, refusal_of, refuse


@workflow.defn
class WeeklyBookingWorkflow:
    def __init__(self) -> None:
        self.run_view: RunView | None = None
        self.refusal: Refusal | None = None
        self.round = 0
        self.students_done = 0
        self.booked = 0
        self.failed = 0

    @workflow.run
    async def run(self, request: RunRequest) -> RunView | None:
        try:
            self.run_view = await workflow.execute_activity_method(
                WeeklyBookingActivities.start_booking_run,
                StartRun(request=request, flow_id=workflow.info().workflow_id, now=workflow.now()),
                **STORE_STEP,
            )
        except ActivityError as error:
            self.refusal = refusal_of(error)
            return None
        run = self.run_view
        for round_ in range(1, run.rounds + 1):
            self.round, self.students_done = round_, 0
            for first in range(0, run.students, request.chunk):
                outcome = await workflow.execute_activity_method(
                    WeeklyBookingActivities.book_run_chunk,
                    BookChunk(
                        run_id=run.id,
                        round=round_,
                        first=first,
                        size=request.chunk,
                        actor=request.actor,
                        now=workflow.now(),
                    ),
                    **STORE_STEP,
                )
                self.students_done = min(first + request.chunk, run.students)
                self.booked += outcome.booked
                self.failed += outcome.failed
                workflow.set_current_details(self._details())
        self.run_view = await workflow.execute_activity_method(
            WeeklyBookingActivities.finish_booking_run,
            FinishRun(run_id=run.id, now=workflow.now()),
            **STORE_STEP,
        )
        workflow.set_current_details(self._details())
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.run_view

    def _details(self) -> str:
        assert self.run_view is not None
        run = self.run_view
        return (
            f"{run.kind.value} run {run.id}, week of {run.week}: wish {self.round}/{run.rounds}, "
            f"{self.students_done}/{run.students} students; {self.booked} booked, "
            f"{self.failed} not ({run.state.value})"
        )

    @workflow.update
    async def started(self) -> RunView:
        """The run as recorded (its students fixed), or the refusal."""
        await workflow.wait_condition(lambda: self.run_view is not None or self.refusal is not None)
        if self.run_view is None:
            assert self.refusal is not None
            raise refuse(self.refusal)
        return self.run_view

    @workflow.query
    def state(self) -> RunProgress:
        return RunProgress(
            run=self.run_view,
            round=self.round,
            students_done=self.students_done,
            booked=self.booked,
            failed=self.failed,
        )
