"""Activities of the dual-excellence contract flow (双优合约): create (W1 and W2 booked), offer
a week to its teachers, record a teacher's answer for a week, expire unanswered weeks, close;
and, for contracts proposed before weekly answers, propose, answers, start, one more week."""

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities import StoreActivities
from domain.contract import (
    AnswerContract,
    AnswerContractWeek,
    BookContractWeek,
    CloseContract,
    ContractView,
    Created,
    ExpireContractWeeks,
    Expired,
    ProposeContract,
    Started,
    WeekBooking,
    WeekOffer,
    WeekOutcome,
)
from store import contracts


class ContractActivities(StoreActivities):
    @activity.defn
    async def create_contract(self, step: ProposeContract) -> Created:
        async def op(session: AsyncSession) -> Created:
            return await contracts.create(session, step.contract, step.now, self.rules)

        return await self.once(step, step.now, Created, op)

    @activity.defn
    async def offer_contract_week(self, step: BookContractWeek) -> WeekOffer:
        async def op(session: AsyncSession) -> WeekOffer:
            return await contracts.offer_week(
                session,
                contract_id=step.contract_id,
                week=step.week,
                actor=step.actor,
                now=step.now,
                rules=self.rules,
            )

        return await self.once(step, step.now, WeekOffer, op)

    @activity.defn
    async def answer_contract_week(self, step: AnswerContractWeek) -> WeekBooking:
        async def op(session: AsyncSession) -> WeekBooking:
            return await contracts.answer_week(
                session,
                contract_id=step.contract_id,
                answer=step.answer,
                now=step.now,
                rules=self.rules,
            )

        return await self.once(step, step.now, WeekBooking, op)

    @activity.defn
    async def expire_contract_weeks(self, step: ExpireContractWeeks) -> Expired:
        async def op(session: AsyncSession) -> Expired:
            weeks = await contracts.expire_weeks(
                session, contract_id=step.contract_id, actor=step.actor, now=step.now
            )
            return Expired(weeks=weeks)

        return await self.once(step, step.now, Expired, op)

    @activity.defn
    async def propose_contract(self, step: ProposeContract) -> ContractView:
        async def op(session: AsyncSession) -> ContractView:
            return await contracts.propose(session, step.contract, step.now, self.rules)

        return await self.once(step, step.now, ContractView, op)

    @activity.defn
    async def record_contract_answer(self, step: AnswerContract) -> ContractView:
        async def op(session: AsyncSession) -> ContractView:
            return await contracts.answer(
                session,
                contract_id=step.contract_id,
                teacher_id=step.answer.teacher_id,
                agree=step.agree,
                reason=step.answer.reason,
                actor=step.answer.actor,
                now=step.now,
                rules=self.rules,
            )

        return await self.once(step, step.now, ContractView, op)

    @activity.defn
    async def start_contract(self, step: BookContractWeek) -> Started:
        """Both agreed: active, and W1 and W2 booked with both teachers in one transaction."""

        async def op(session: AsyncSession) -> Started:
            weeks = await contracts.start(
                session,
                contract_id=step.contract_id,
                actor=step.actor,
                now=step.now,
                rules=self.rules,
            )
            return Started(weeks=weeks)

        return await self.once(step, step.now, Started, op)

    @activity.defn
    async def book_contract_week(self, step: BookContractWeek) -> WeekOutcome:
        async def op(session: AsyncSession) -> WeekOutcome:
            return await contracts.book_week(
                session,
                contract_id=step.contract_id,
                week=step.week,
                actor=step.actor,
                now=step.now,
                rules=self.rules,
            )

        return await self.once(step, step.now, WeekOutcome, op)

    @activity.defn
    async def close_contract(self, step: CloseContract) -> ContractView:
        async def op(session: AsyncSession) -> ContractView:
            return await contracts.close(
                session,
                contract_id=step.contract_id,
                state=step.state,
                reason=step.reason,
                actor=step.actor,
                now=step.now,
                rules=self.rules,
            )

        return await self.once(step, step.now, ContractView, op)
