"""Fake cancel (TMK-4, CC-4).

A channel takes the student off a class: the first step cancels it with a full refund and holds
its slot for that channel until 30 minutes later or the class's start, whichever comes first.
When the channel books it for another student, the booking's transaction ends the hold and this
flow hears of it; otherwise the timer gives the slot back to general inventory.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.fake_cancel import FakeCancelActivities
    from domain.fake_cancel import FakeCancelInput, FakeCancelStep, FakeCancelView, ReleaseSlot
    from domain.refusal import Refusal
    from domain.teacher_cancel import HeldSlotBooked
    from domain.words import HoldState
    from workflows.common import STORE_STEP, refusal_of, refuse


@workflow.defn
class FakeCancelWorkflow:
    def __init__(self) -> None:
        self.view: FakeCancelView | None = None
        self.refusal: Refusal | None = None

    @workflow.run
    async def run(self, cancel: FakeCancelInput) -> FakeCancelView | None:
        try:
            self.view = await workflow.execute_activity_method(
                FakeCancelActivities.cancel_and_hold_for_channel,
                FakeCancelStep(cancel=cancel, now=workflow.now()),
                **STORE_STEP,
            )
        except ActivityError as error:
            self.refusal = refusal_of(error)
            return None
        try:
            await workflow.wait_condition(
                lambda: not self._holding(),
                timeout=max(self.view.expires_at - workflow.now(), timedelta(0)),
            )
        except TimeoutError:
            released = await workflow.execute_activity_method(
                FakeCancelActivities.release_slot,
                ReleaseSlot(class_id=cancel.class_id, actor=cancel.actor, now=workflow.now()),
                **STORE_STEP,
            )
            if self._holding():
                self.view = self.view.model_copy(update=released.model_dump())
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view

    def _holding(self) -> bool:
        return self.view is not None and self.view.state is HoldState.holding

    @workflow.update
    async def opened(self) -> FakeCancelView:
        """The cancellation and the held slot, or the refusal (asked right after the start)."""
        await workflow.wait_condition(lambda: self.view is not None or self.refusal is not None)
        if self.view is None:
            assert self.refusal is not None
            raise refuse(self.refusal)
        return self.view

    @workflow.signal
    def held_slot_booked(self, booked: HeldSlotBooked) -> None:
        """The channel booked the held slot; the hold ended in that transaction."""
        if self.view is not None and self._holding():
            self.view = self.view.model_copy(
                update={"state": HoldState.booked, "booked_class_id": booked.class_id}
            )

    @workflow.query
    def state(self) -> FakeCancelView | None:
        return self.view
