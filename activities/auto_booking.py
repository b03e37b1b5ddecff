"""Activities of weekly booking runs: start (fix the students in fair order), book one chunk
of one round in one transaction, finish."""

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities import StoreActivities
from domain.auto_booking import BookChunk, ChunkOutcome, FinishRun, RunView, StartRun
from store import auto_booking


class WeeklyBookingActivities(StoreActivities):
    @activity.defn
    async def start_booking_run(self, step: StartRun) -> RunView:
        async def op(session: AsyncSession) -> RunView:
            return await auto_booking.start_run(
                session, step.request, flow_id=step.flow_id, now=step.now, rules=self.rules
            )

        return await self.once(step, step.now, RunView, op)

    @activity.defn
    async def book_run_chunk(self, step: BookChunk) -> ChunkOutcome:
        async def op(session: AsyncSession) -> ChunkOutcome:
            return await auto_booking.book_chunk(session, step, self.rules)

        return await self.once(step, step.now, ChunkOutcome, op)

    @activity.defn
    async def finish_booking_run(self, step: FinishRun) -> RunView:
        async def op(session: AsyncSession) -> RunView:
            return await auto_booking.finish_run(session, step.run_id, step.now)

        return await self.once(step, step.now, RunView, op)
