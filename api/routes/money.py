"""A student's money: balances, ledger, and staff grants of credits, stones and coupons."""

from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context, caller, describe
from api.types import IdParam, UtcDatetime
from domain.channels import Operation
from domain.words import Asset, CourseType
from store import ledger

router = APIRouter(prefix="/v1/students/{student_id}", tags=["money"])


class CouponOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    course_type: CourseType
    expires_at: datetime


class CouponBalance(CouponOut):
    usable: bool


class BalancesOut(BaseModel):
    student_id: int
    credits: dict[CourseType, int]
    stones: int
    coupons: list[CouponBalance]


class LedgerEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    asset: Asset
    key: str
    delta: int
    reason: str
    class_id: int | None
    channel: str
    actor_id: str
    occurred_at: datetime


class Grant(BaseModel):
    asset: Asset = Field(description="credit or stones; coupons have their own route")
    amount: int = Field(gt=0, le=100_000)
    course_type: CourseType | None = Field(None, description="required for credits")


class NewCoupon(BaseModel):
    course_type: CourseType
    expires_at: UtcDatetime


async def _balances(session: AsyncSession, student_id: int, now: datetime) -> BalancesOut:
    found = await ledger.balances(session, student_id, now)
    return BalancesOut(
        student_id=student_id,
        credits={CourseType(k): v for k, v in found.credits.items()},
        stones=found.stones,
        coupons=[
            CouponBalance(
                id=c.id, course_type=c.course_type, expires_at=c.expires_at, usable=usable
            )
            for c, usable in found.coupons
        ],
    )


@router.get(
    "/balances",
    **describe(Operation.read_balances, [], "Credits per course type, energy stones, coupons."),
)
async def balances(
    student_id: IdParam, ctx: Context = caller(Operation.read_balances)
) -> BalancesOut:
    ctx.acts_for_student(student_id)
    return await ctx.read(lambda session: _balances(session, student_id, ctx.now))


@router.get(
    "/ledger",
    **describe(Operation.read_balances, [], "The student's ledger entries, newest first."),
)
async def entries(
    student_id: IdParam,
    limit: int = Query(100, ge=1, le=1000),
    before_id: IdParam | None = None,
    ctx: Context = caller(Operation.read_balances),
) -> list[LedgerEntryOut]:
    ctx.acts_for_student(student_id)

    async def op(session: AsyncSession) -> list[LedgerEntryOut]:
        found = await ledger.entries(session, student_id, limit, before_id)
        return [LedgerEntryOut.model_validate(e) for e in found]

    return await ctx.read(op)


@router.post(
    "/grants",
    status_code=201,
    **describe(Operation.grant, [], "Grant credits of a course type, or energy stones."),
)
async def grant(
    student_id: IdParam, body: Grant, ctx: Context = caller(Operation.grant)
) -> BalancesOut:
    async def op(session: AsyncSession) -> BalancesOut:
        await ledger.grant(
            session, student_id, body.asset, body.amount, body.course_type, ctx.actor, ctx.now
        )
        return await _balances(session, student_id, ctx.now)

    return await ctx.run(body, BalancesOut, op)


@router.post(
    "/coupons",
    status_code=201,
    **describe(Operation.grant, [], "Grant a single-use coupon for a course type."),
)
async def grant_coupon(
    student_id: IdParam, body: NewCoupon, ctx: Context = caller(Operation.grant)
) -> CouponOut:
    async def op(session: AsyncSession) -> CouponOut:
        coupon = await ledger.grant_coupon(
            session, student_id, body.course_type, body.expires_at, ctx.actor, ctx.now
        )
        return CouponOut.model_validate(coupon)

    return await ctx.run(body, CouponOut, op)
