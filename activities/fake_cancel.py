"""Activities of the fake-cancel flow (TMK-4, CC-4)."""

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities import StoreActivities
from domain.fake_cancel import FakeCancelStep, FakeCancelView, ReleaseSlot, SlotReleased
from store import fake_cancels


class FakeCancelActivities(StoreActivities):
    @activity.defn
    async def cancel_and_hold_for_channel(self, step: FakeCancelStep) -> FakeCancelView:
        async def op(session: AsyncSession) -> FakeCancelView:
            return await fake_cancels.fake_cancel(session, step.cancel, step.now)

        return await self.once(step, step.now, FakeCancelView, op)

    @activity.defn
    async def release_slot(self, step: ReleaseSlot) -> SlotReleased:
        async def op(session: AsyncSession) -> SlotReleased:
            state, booked = await fake_cancels.release(session, step.class_id, step.actor, step.now)
            return SlotReleased(state=state, booked_class_id=booked)

        return await self.once(step, step.now, SlotReleased, op)
