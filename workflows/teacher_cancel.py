"""Teacher-cancel hold (TCH-5).

A teacher cancels a booked class: the student is refunded in full, the cancellation is kept
for penalties, and each other time the teacher offers is held for that student. When the
student books one, the others are removed at once (in the booking's transaction, then this
flow hears of it); at the end of the hold the timer removes what is left. Fireman may extend
or end the hold.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.teacher_cancel import TeacherCancelActivities
    from domain.channels import Actor
    from domain.refusal import Refusal
    from domain.teacher_cancel import (
        CancelByTeacher,
        CloseHold,
        Ending,
        ExtendHold,
        Extension,
        HeldSlotBooked,
        HoldView,
        TeacherCancelInput,
    )
    from domain.words import HoldState, TimeslotState
    from workflows.common import STORE_STEP, refusal_of, refuse


@workflow.defn
class TeacherCancelHoldWorkflow:
    def __init__(self) -> None:
        self.view: HoldView | None = None
        self.refusal: Refusal | None = None
        self.expiry_moved = False

    @workflow.run
    async def run(self, cancel: TeacherCancelInput) -> HoldView | None:
        try:
            self.view = await workflow.execute_activity_method(
                TeacherCancelActivities.cancel_class_and_hold_offers,
                CancelByTeacher(cancel=cancel, now=workflow.now()),
                **STORE_STEP,
            )
        except ActivityError as error:
            self.refusal = refusal_of(error)
            return None

        while self._holding():
            self.expiry_moved = False
            try:
                await workflow.wait_condition(
                    lambda: self.expiry_moved or not self._holding(),
                    timeout=max(self.view.expires_at - workflow.now(), timedelta(0)),
                )
            except TimeoutError:
                await self._close(HoldState.expired, cancel.actor)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view

    def _holding(self) -> bool:
        return self.view is not None and self.view.state is HoldState.holding

    async def _close(self, state: HoldState, actor: Actor) -> HoldView:
        assert self.view is not None
        self.view = await workflow.execute_activity_method(
            TeacherCancelActivities.close_hold,
            CloseHold(class_id=self.view.class_id, state=state, actor=actor, now=workflow.now()),
            **STORE_STEP,
        )
        return self.view

    @workflow.update
    async def opened(self) -> HoldView:
        """The cancellation and the held slots, or the refusal (update-with-start)."""
        await workflow.wait_condition(lambda: self.view is not None or self.refusal is not None)
        if self.view is None:
            assert self.refusal is not None
            raise refuse(self.refusal)
        return self.view

    @workflow.signal
    def held_slot_booked(self, booked: HeldSlotBooked) -> None:
        """The student booked an offered slot; the other slots went in that transaction."""
        if self.view is not None and self._holding():
            offered = [
                slot.model_copy(
                    update={
                        "state": TimeslotState.booked
                        if slot.id == booked.timeslot_id
                        else TimeslotState.removed
                    }
                )
                for slot in self.view.offered
            ]
            self.view = self.view.model_copy(
                update={
                    "state": HoldState.booked,
                    "booked_class_id": booked.class_id,
                    "offered": offered,
                }
            )

    @workflow.update
    async def extend(self, extension: Extension) -> HoldView:
        assert self.view is not None
        try:
            self.view = await workflow.execute_activity_method(
                TeacherCancelActivities.extend_hold,
                ExtendHold(
                    class_id=self.view.class_id,
                    until=extension.until,
                    actor=extension.actor,
                    now=workflow.now(),
                ),
                **STORE_STEP,
            )
        except ActivityError as error:
            raise refuse(refusal_of(error)) from error
        self.expiry_moved = True
        return self.view

    @workflow.update
    async def end(self, ending: Ending) -> HoldView:
        return await self._close(HoldState.ended, ending.actor)

    @workflow.query
    def state(self) -> HoldView | None:
        return self.view
