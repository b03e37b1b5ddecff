"""Activities of the teacher-cancel hold flow (TCH-5)."""

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities import StoreActivities
from domain.teacher_cancel import (
    CancelByTeacher,
    CloseHold,
    ExtendHold,
    HoldView,
    OfferedSlot,
)
from store import holds
from store.models import TeacherCancel


async def hold_view(session: AsyncSession, record: TeacherCancel) -> HoldView:
    offered = await holds.offered_slots(session, record.class_id)
    return HoldView(
        class_id=record.class_id,
        teacher_id=record.teacher_id,
        student_id=record.student_id,
        state=record.state,
        expires_at=record.expires_at,
        reason=record.reason,
        booked_class_id=record.booked_class_id,
        offered=[OfferedSlot.model_validate(slot) for slot in offered],
    )


class TeacherCancelActivities(StoreActivities):
    @activity.defn
    async def cancel_class_and_hold_offers(self, step: CancelByTeacher) -> HoldView:
        cancel = step.cancel

        async def op(session: AsyncSession) -> HoldView:
            record, _ = await holds.cancel_by_teacher(
                session,
                class_id=cancel.class_id,
                teacher_id=cancel.teacher_id,
                offered=cancel.offered,
                reason=cancel.reason,
                actor=cancel.actor,
                now=step.now,
                rules=self.rules,
            )
            return await hold_view(session, record)

        return await self.once(step, step.now, HoldView, op)

    @activity.defn
    async def close_hold(self, step: CloseHold) -> HoldView:
        async def op(session: AsyncSession) -> HoldView:
            record = await holds.close_hold(
                session, step.class_id, step.state, step.actor, step.now
            )
            return await hold_view(session, record)

        return await self.once(step, step.now, HoldView, op)

    @activity.defn
    async def extend_hold(self, step: ExtendHold) -> HoldView:
        async def op(session: AsyncSession) -> HoldView:
            record = await holds.extend_hold(
                session, step.class_id, step.until, step.actor, step.now, self.rules
            )
            return await hold_view(session, record)

        return await self.once(step, step.now, HoldView, op)
