"""Activities of the class request flow (求课): hold the payment, book on approval, release."""

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities import StoreActivities
from domain.class_request import ApproveRequest, CreateRequest, ReleaseRequest, RequestView
from store import class_requests


class ClassRequestActivities(StoreActivities):
    @activity.defn
    async def hold_request_payment(self, step: CreateRequest) -> RequestView:
        request = step.request

        async def op(session: AsyncSession) -> RequestView:
            created = await class_requests.create_request(
                session,
                request_id=request.request_id,
                student_id=request.student_id,
                teacher_id=request.teacher_id,
                start_at=request.start_at,
                course_type=request.course_type,
                payment=request.payment,
                actor=request.actor,
                now=step.now,
                rules=self.rules,
            )
            return RequestView.model_validate(created)

        return await self.once(step, step.now, RequestView, op)

    @activity.defn
    async def book_approved_request(self, step: ApproveRequest) -> RequestView:
        async def op(session: AsyncSession) -> RequestView:
            approved = await class_requests.approve(
                session,
                request_id=step.request_id,
                keep_slot=step.approval.keep_slot,
                actor=step.approval.actor,
                now=step.now,
            )
            return RequestView.model_validate(approved)

        return await self.once(step, step.now, RequestView, op)

    @activity.defn
    async def release_request_hold(self, step: ReleaseRequest) -> RequestView:
        async def op(session: AsyncSession) -> RequestView:
            released = await class_requests.release(
                session,
                request_id=step.request_id,
                state=step.state,
                reason=step.reason,
                actor=step.actor,
                now=step.now,
            )
            return RequestView.model_validate(released)

        return await self.once(step, step.now, RequestView, op)
