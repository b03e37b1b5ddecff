"""Over-booked class (超约, SD-5a, SD-5c, CLS-2, TMK-1, CC-1, H5-9, H5-10).

The class is booked and paid with no teacher. When the student enters the classroom, the API
matches a teacher in one transaction (a reserved pool slot, else any open slot at the start)
and this flow learns the outcome afterwards by reading the class; it owns only what waits:

- it sleeps until the start; the API wakes it earlier only for a student left waiting;
- while the student waits it tries the match again every `retry_every`, until `wait_until`
  (start + 10 min by default); then the class fails and the payment is refunded in full;
- at the end of the half hour it closes the class: as_scheduled when taught, student_no_show
  when the student never entered.
"""

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.overbooking import OverbookedClassActivities
    from domain.overbooking import (
        SLOT,
        ClassStep,
        OverbookedClassInput,
        OverbookState,
        OverbookView,
        StudentEntered,
    )
    from workflows.common import STORE_STEP, refusal_of


@workflow.defn
class OverbookedClassWorkflow:
    def __init__(self) -> None:
        self.view: OverbookView | None = None
        self.woken = False

    @workflow.run
    async def run(self, booked: OverbookedClassInput) -> OverbookView | None:
        await self._doze(booked.start_at - workflow.now())
        while await self._step(OverbookedClassActivities.match_waiting_student, booked):
            assert self.view is not None
            if self.view.closed or self.view.teacher_id is not None:
                break
            now = workflow.now()
            if now >= booked.wait_until:
                if self.view.state is OverbookState.waiting:
                    await self._step(OverbookedClassActivities.give_up_waiting, booked)
                break
            waiting = self.view.state is OverbookState.waiting
            left = booked.wait_until - now
            await self._doze(min(left, booked.retry_every) if waiting else left)

        if self.view is not None and not self.view.closed:
            await self._sleep_until(booked.start_at + SLOT)
            await self._step(OverbookedClassActivities.close_class, booked)
        return self.view

    async def _step(
        self,
        activity: Callable[[OverbookedClassActivities, ClassStep], Awaitable[OverbookView]],
        booked: OverbookedClassInput,
    ) -> bool:
        """One store step; False if the class does not exist (its booking never committed)."""
        try:
            self.view = await workflow.execute_activity_method(
                activity,
                ClassStep(class_id=booked.class_id, actor=booked.actor, now=workflow.now()),
                **STORE_STEP,
            )
        except ActivityError as error:
            if refusal_of(error).code == "class_not_found":
                return False
            raise
        return True

    async def _doze(self, delay: timedelta) -> None:
        """Sleep, unless a student's entry wakes the flow first."""
        self.woken = False
        if delay > timedelta(0):
            try:
                await workflow.wait_condition(lambda: self.woken, timeout=delay)
            except TimeoutError:
                pass

    async def _sleep_until(self, moment: datetime) -> None:
        if (delay := moment - workflow.now()) > timedelta(0):
            await workflow.sleep(delay)

    @workflow.signal
    def student_entered(self, entered: StudentEntered) -> None:
        """Sent after the API answered a student who found no teacher: try again now."""
        self.woken = True

    @workflow.query
    def state(self) -> OverbookView | None:
        return self.view
