"""Activities of the over-booking flows: the class's retries, give-up, close and reads
(SD-5c), and the teacher reservation (SD-5b). Each is one store transaction, done once per
step."""

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities import StoreActivities
from domain.overbooking import ClassStep, OverbookView, ReservationOutcome, ReserveTeachers
from store import overbooking


class OverbookedClassActivities(StoreActivities):
    @activity.defn
    async def match_waiting_student(self, step: ClassStep) -> OverbookView:
        """A waiting student gets a teacher if one is free now; anyone else is only read."""

        async def op(session: AsyncSession) -> OverbookView:
            return await overbooking.retry_match(
                session, class_id=step.class_id, actor=step.actor, now=step.now
            )

        return await self.once(step, step.now, OverbookView, op)

    @activity.defn
    async def give_up_waiting(self, step: ClassStep) -> OverbookView:
        async def op(session: AsyncSession) -> OverbookView:
            return await overbooking.give_up(
                session, class_id=step.class_id, actor=step.actor, now=step.now
            )

        return await self.once(step, step.now, OverbookView, op)

    @activity.defn
    async def close_class(self, step: ClassStep) -> OverbookView:
        async def op(session: AsyncSession) -> OverbookView:
            return await overbooking.close(
                session, class_id=step.class_id, actor=step.actor, now=step.now
            )

        return await self.once(step, step.now, OverbookView, op)

    @activity.defn
    async def read_class(self, step: ClassStep) -> OverbookView:
        """The class as the API left it after a change of teacher; only read."""

        async def op(session: AsyncSession) -> OverbookView:
            return await overbooking.view(session, step.class_id)

        return await self.read(op)


class TeacherReservationActivities(StoreActivities):
    @activity.defn
    async def reserve_teachers(self, step: ReserveTeachers) -> ReservationOutcome:
        async def op(session: AsyncSession) -> ReservationOutcome:
            return await overbooking.reserve_teachers(
                session, now=step.now, rules=self.rules.overbooking
            )

        return await self.once(step, step.now, ReservationOutcome, op)
