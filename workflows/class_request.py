"""Class request (求课, TCH-3, TCH-4, LP-6).

A student, or their LP, asks a teacher for a time the teacher has not opened. The payment is
held at once; the teacher approves or rejects before min(created + 24 h, start - 2 h); if
nobody answers the request expires, and the requester may withdraw it while it waits. Only an
approval books a class, and everything else gives the hold back in full.
"""

from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.types import MethodAsyncSingleParam

with workflow.unsafe.imports_passed_through():
    from activities.class_request import ClassRequestActivities
    from domain.class_request import (
        Approval,
        ApproveRequest,
        ClassRequestInput,
        CreateRequest,
        Rejection,
        ReleaseRequest,
        RequestView,
    )
    from domain.refusal import Refusal
    from domain.words import RequestState
    from workflows.common import refusal_of, refuse, store_step

# Runs from this patch on take their store steps as local activities: each runs inside the
# workflow task that needs it, sparing Temporal an activity task and a workflow task per step.
LOCAL_STEPS = "class-request-local-steps"
# How long a flow over within its first workflow task waits for the `submitted` update.
ASKED_WITHIN = timedelta(minutes=1)

Step = TypeVar("Step")


@workflow.defn
class ClassRequestWorkflow:
    def __init__(self) -> None:
        self.view: RequestView | None = None
        self.refusal: Refusal | None = None
        self.answer: Approval | tuple[RequestState, Rejection] | None = None
        self.local_steps = False
        self.asked = False

    @workflow.run
    async def run(self, request: ClassRequestInput) -> RequestView | None:
        self.local_steps = workflow.patched(LOCAL_STEPS)
        try:
            self.view = await self._step(
                ClassRequestActivities.hold_request_payment,
                CreateRequest(request=request, now=workflow.now()),
            )
        except (ActivityError, ApplicationError) as error:
            self.refusal = refusal_of(error)
            await self._heard()
            return None

        try:
            await workflow.wait_condition(
                lambda: self.answer is not None,
                timeout=max(self.view.deadline - workflow.now(), timedelta(0)),
            )
        except TimeoutError:
            expired = Rejection(actor=request.actor, reason="the teacher did not answer in time")
            self.answer = (RequestState.expired, expired)

        if isinstance(self.answer, Approval):
            await self._book(self.answer)
        elif self.answer is not None:
            state, rejection = self.answer
            await self._release(state, rejection)
        await self._heard()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view

    async def _heard(self) -> None:
        """From LOCAL_STEPS on, the flow does not close before the starter's `submitted`
        update has heard how the hold went: a local hold refused (or released, its deadline
        already past) ends within the first workflow task, before that update, sent right
        after the start, has arrived. At most ASKED_WITHIN, for a starter that never asks."""
        if not self.local_steps or self.asked:
            return
        try:
            await workflow.wait_condition(
                lambda: self.asked and workflow.all_handlers_finished(), timeout=ASKED_WITHIN
            )
        except TimeoutError:
            pass

    async def _book(self, approval: Approval) -> None:
        assert self.view is not None
        try:
            self.view = await self._step(
                ClassRequestActivities.book_approved_request,
                ApproveRequest(request_id=self.view.id, approval=approval, now=workflow.now()),
            )
        except (ActivityError, ApplicationError) as error:
            # The teacher or the student is no longer free at that time.
            self.refusal = refusal_of(error)
            failed = Rejection(actor=approval.actor, reason=self.refusal.code)
            await self._release(RequestState.failed, failed)

    async def _release(self, state: RequestState, rejection: Rejection) -> None:
        assert self.view is not None
        self.view = await self._step(
            ClassRequestActivities.release_request_hold,
            ReleaseRequest(
                request_id=self.view.id,
                state=state,
                reason=rejection.reason,
                actor=rejection.actor,
                now=workflow.now(),
            ),
        )

    async def _step(
        self,
        activity: MethodAsyncSingleParam[ClassRequestActivities, Step, RequestView],
        step: Step,
    ) -> RequestView:
        """A store step: a local activity from LOCAL_STEPS on, else as the run began."""
        return await store_step(activity, step, local=self.local_steps)

    @workflow.update
    async def submitted(self) -> RequestView:
        """The request as recorded with its payment held, or the refusal (asked right after
        the start)."""
        self.asked = True
        await workflow.wait_condition(lambda: self.view is not None or self.refusal is not None)
        if self.view is None:
            assert self.refusal is not None
            raise refuse(self.refusal)
        return self.view

    @workflow.update
    async def approve(self, approval: Approval) -> RequestView:
        self.answer = approval
        return await self._outcome()

    @workflow.update
    async def reject(self, rejection: Rejection) -> RequestView:
        self.answer = (RequestState.rejected, rejection)
        return await self._outcome()

    @workflow.update
    async def withdraw(self, withdrawal: Rejection) -> RequestView:
        self.answer = (RequestState.withdrawn, withdrawal)
        return await self._outcome()

    @approve.validator
    def _approve_while_pending(self, approval: Approval) -> None:
        self._still_pending()

    @reject.validator
    def _reject_while_pending(self, rejection: Rejection) -> None:
        self._still_pending()

    @withdraw.validator
    def _withdraw_while_pending(self, withdrawal: Rejection) -> None:
        self._still_pending()

    def _still_pending(self) -> None:
        if self.view is None or self.answer is not None:
            raise ApplicationError("the request is no longer pending", type="request_closed")

    async def _outcome(self) -> RequestView:
        await workflow.wait_condition(
            lambda: self.view is not None and self.view.state is not RequestState.pending
        )
        assert self.view is not None
        if self.view.state is RequestState.failed and self.refusal is not None:
            raise refuse(self.refusal)
        return self.view

    @workflow.query
    def state(self) -> RequestView | None:
        return self.view
