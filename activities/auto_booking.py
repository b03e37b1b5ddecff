"""Activities of weekly booking runs: start (fix the students in fair order), book one chunk
of one round, finish."""

import asyncio
from contextlib import AsyncExitStack

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities import StoreActivities, refusal_error, step_hashes
from domain.auto_booking import BookChunk, ChunkOutcome, FinishRun, RunView, StartRun
from domain.errors import DomainError
from domain.refusal import Refusal
from store import auto_booking, operation_keys
from store.models import OperationKey

# A chunk is booked in this many transactions side by side, each the chunk's wishes at every
# PARTS-th half hour (store.auto_booking.book_chunk_parts): the outcome is the chunk's, and on
# two cores PostgreSQL books both parts at once.
PARTS = 2


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
        """The chunk in PARTS transactions at once (store.auto_booking.book_chunk_parts), each
        done once: a retry books only the parts that did not commit."""
        key, (request_hash, also_hash) = self.key(), step_hashes(step)
        keys = {p: f"{key}/{p}:{PARTS}" for p in range(PARTS)}
        async with AsyncExitStack() as stack:
            sessions = {p: await stack.enter_async_context(self.sessions()) for p in range(PARTS)}
            # Booked in one transaction by an attempt from before chunks had parts.
            earlier = await sessions[0].get(OperationKey, ("activity", key))
            if earlier is not None and earlier.response is not None:
                return ChunkOutcome.model_validate(earlier.response)

            async def claim(p: int) -> ChunkOutcome | None:
                first = await operation_keys.claim(
                    sessions[p], "activity", keys[p], request_hash, step.now, also_hash
                )
                return None if first is None else ChunkOutcome.model_validate(first)

            async def remember(p: int, outcome: ChunkOutcome) -> None:
                await operation_keys.remember(
                    sessions[p], "activity", keys[p], outcome.model_dump(mode="json")
                )

            try:
                claimed = await asyncio.gather(*(claim(p) for p in range(PARTS)))
                done = {p: first for p, first in enumerate(claimed) if first is not None}
                todo = {p: session for p, session in sessions.items() if p not in done}
                booked = (
                    await auto_booking.book_chunk_parts(todo, step, self.rules, parts=PARTS)
                    if todo
                    else {}
                )
            except DomainError as error:
                raise refusal_error(Refusal.of(error)) from error
            await asyncio.gather(*(remember(p, outcome) for p, outcome in booked.items()))
            for p, outcome in booked.items():  # one at a time: each adds to the run's counts
                await auto_booking.count_chunk(sessions[p], step.run_id, outcome)
                await sessions[p].commit()
        outcomes = [*done.values(), *booked.values()]
        return ChunkOutcome(
            students=sum(o.students for o in outcomes),
            booked=sum(o.booked for o in outcomes),
            failed=sum(o.failed for o in outcomes),
        )

    @activity.defn
    async def finish_booking_run(self, step: FinishRun) -> RunView:
        async def op(session: AsyncSession) -> RunView:
            return await auto_booking.finish_run(session, step.run_id, step.now)

        return await self.once(step, step.now, RunView, op)
