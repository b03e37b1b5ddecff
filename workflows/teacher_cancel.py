"""Teacher-cancel hold (TCH-5).

A teacher cancels a booked class: the student is refunded in full, the cancellation is kept
for penalties, and each other time the teacher offers is held for that student. When the
student books one, the others are removed at once (in the booking's transaction, then this
flow hears of it); at the end of the hold the timer removes what is left. Fireman may extend
or end the hold.

Fireman's changes are updates that only record what was asked; `run` applies them one at a time
between its timers, so an extension and the expiry never run at once.
"""

from datetime import timedelta
from typing import TypeAlias

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

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


Change: TypeAlias = Extension | Ending
# Flows started before this marker ran fireman's changes inside the update handler; they keep
# doing so when replayed (see `_apply_in_handler`).
RUN_APPLIES_CHANGES = "run-applies-changes"


@workflow.defn
class TeacherCancelHoldWorkflow:
    def __init__(self) -> None:
        self.view: HoldView | None = None
        self.refusal: Refusal | None = None
        # Fireman's changes waiting for `run`, by update id, and their answers.
        self.changes: list[tuple[str, Change]] = []
        self.answers: dict[str, HoldView | Refusal] = {}
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

        while self._holding() or self.changes:
            self.expiry_moved = False
            try:
                await workflow.wait_condition(
                    lambda: bool(self.changes) or self.expiry_moved or not self._holding(),
                    timeout=max(self.view.expires_at - workflow.now(), timedelta(0)),
                )
            except TimeoutError:
                await self._close(HoldState.expired, cancel.actor)
            while self.changes:
                update_id, change = self.changes.pop(0)
                self.answers[update_id] = await self._apply(change)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view

    def _holding(self) -> bool:
        return self.view is not None and self.view.state is HoldState.holding

    async def _apply(self, change: Change) -> HoldView | Refusal:
        """Fireman's change, or the store's refusal of it (e.g. the hold is already over)."""
        assert self.view is not None
        try:
            if isinstance(change, Ending):
                return await self._close(HoldState.ended, change.actor)
            self.view = await workflow.execute_activity_method(
                TeacherCancelActivities.extend_hold,
                ExtendHold(
                    class_id=self.view.class_id,
                    until=change.until,
                    actor=change.actor,
                    now=workflow.now(),
                ),
                **STORE_STEP,
            )
            return self.view
        except ActivityError as error:
            return refusal_of(error)

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
        """The cancellation and the held slots, or the refusal (asked right after the start)."""
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
        return await self._ask(extension)

    @workflow.update
    async def end(self, ending: Ending) -> HoldView:
        return await self._ask(ending)

    @extend.validator
    def _extend_while_holding(self, extension: Extension) -> None:
        self._still_holding()

    @end.validator
    def _end_while_holding(self, ending: Ending) -> None:
        self._still_holding()

    def _still_holding(self) -> None:
        if not self._holding():
            raise ApplicationError("the hold is over", type="hold_closed")

    async def _ask(self, change: Change) -> HoldView:
        """Record the change for `run`, and answer with what `run` made of it."""
        if not workflow.patched(RUN_APPLIES_CHANGES):
            return await self._apply_in_handler(change)
        update_id = workflow.current_update_info().id  # type: ignore[union-attr]
        self.changes.append((update_id, change))
        await workflow.wait_condition(lambda: update_id in self.answers)
        answer = self.answers.pop(update_id)
        if isinstance(answer, Refusal):
            raise refuse(answer)
        return answer

    async def _apply_in_handler(self, change: Change) -> HoldView:
        """How flows started before RUN_APPLIES_CHANGES applied a change, kept for their replay."""
        answer = await self._apply(change)
        if isinstance(answer, Refusal):
            raise refuse(answer)
        self.expiry_moved = isinstance(change, Extension)
        return answer

    @workflow.query
    def state(self) -> HoldView | None:
        return self.view
