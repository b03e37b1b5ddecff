"""Over-booked class (超约, SD-5a, SD-5c, CLS-2, TMK-1, CC-1, H5-9, H5-10).

The class is booked and paid with no teacher. When the student enters the classroom, the API
matches a teacher in one transaction (a reserved pool slot, else any open slot at the start)
and this flow learns the outcome afterwards by reading the class; it owns only what waits:

- it sleeps until the start; the API wakes it earlier only for a student left waiting;
- while the student waits it tries the match again every `retry_every`, until `wait_until`
  (start + 10 min by default); then the class fails and the payment is refunded in full;
- at the end of the half hour it closes the class: as_scheduled when taught, student_no_show
  when the student never entered;
- whenever the class gets a teacher or another one (the API's match at entry or a swap,
  told by the signal `teacher_changed`; or its own retry), its `state` and its `TeacherId`
  search attribute follow, so ops find the class under its teacher.
"""

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.overbooking import OverbookedClassActivities
    from domain.overbooking import (
        SLOT,
        ClassStep,
        OverbookedClassInput,
        OverbookState,
        OverbookView,
        StudentEntered,
        TeacherChanged,
    )
    from workflows.common import FLOW, TEACHER_ID, refusal_of, store_step

# Flows started before TeacherId followed the class's teacher replay without upserting it.
TAG_TEACHER = "tag-teacher"
# Flows that read a teacher change through a (remote) activity replay doing so; the others
# read it inside the workflow task that heard the change, with no activity task round trip
# through Temporal for each of a spike's matches.
READ_CLASS_LOCALLY = "read-class-locally"


@workflow.defn
class OverbookedClassWorkflow:
    def __init__(self) -> None:
        self.view: OverbookView | None = None
        self.woken = False
        self.heard_teacher_change = False

    @workflow.run
    async def run(self, booked: OverbookedClassInput) -> OverbookView | None:
        await self._wait(booked, booked.start_at, entry_wakes=True)
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
            delay = min(left, booked.retry_every) if waiting else left
            await self._wait(booked, now + delay, entry_wakes=True)

        if self.view is not None and not self.view.closed:
            await self._wait(booked, booked.start_at + SLOT, entry_wakes=False)
            await self._step(OverbookedClassActivities.close_class, booked)
        return self.view

    async def _step(
        self,
        activity: Callable[[OverbookedClassActivities, ClassStep], Awaitable[OverbookView]],
        booked: OverbookedClassInput,
        *,
        local: bool = False,
    ) -> bool:
        """One store step; False if the class does not exist (its booking never committed)."""
        step = ClassStep(class_id=booked.class_id, actor=booked.actor, now=workflow.now())
        try:
            self.view = await store_step(activity, step, local=local)
        except (ActivityError, ApplicationError) as error:
            if refusal_of(error).code == "class_not_found":
                return False
            raise
        self._tag_teacher()
        return True

    def _tag_teacher(self) -> None:
        """`TeacherId` follows the class's teacher. Only on a flow started with our search
        attributes: the time-skipping test server has none and refuses them."""
        if self.view is None or self.view.teacher_id is None:
            return
        tags = workflow.info().typed_search_attributes
        teacher = [str(self.view.teacher_id)]
        if tags.get(FLOW) is None or tags.get(TEACHER_ID) == teacher:
            return
        if workflow.patched(TAG_TEACHER):
            workflow.upsert_search_attributes([TEACHER_ID.value_set(teacher)])

    async def _wait(
        self, booked: OverbookedClassInput, until: datetime, *, entry_wakes: bool
    ) -> None:
        """Sleep until `until`; a student's entry ends it early if `entry_wakes`. A teacher
        change heard meanwhile is read (and tagged) at once, and the sleep goes on."""
        self.woken = False
        while (delay := until - workflow.now()) > timedelta(0):
            try:
                await workflow.wait_condition(
                    lambda: (entry_wakes and self.woken) or self.heard_teacher_change, timeout=delay
                )
            except TimeoutError:
                return
            if self.heard_teacher_change:
                self.heard_teacher_change = False
                local = workflow.patched(READ_CLASS_LOCALLY)
                await self._step(OverbookedClassActivities.read_class, booked, local=local)
            if entry_wakes and self.woken:
                return

    @workflow.signal
    def student_entered(self, entered: StudentEntered) -> None:
        """Sent after the API answered a student who found no teacher: try again now."""
        self.woken = True

    @workflow.signal
    def teacher_changed(self, changed: TeacherChanged) -> None:
        """Sent after the API's commit that gave the class a teacher or another one: the flow
        reads the class (the latest read wins, whatever order the signals come in)."""
        self.heard_teacher_change = True

    @workflow.query
    def state(self) -> OverbookView | None:
        return self.view
