"""Money as a ledger (ARCHITECTURE rule 2).

Every movement is an append-only ledger entry plus a guarded change of the account's running
balance, in the caller's transaction. The CHECK on `accounts.balance` and the conditional
UPDATE keep every balance at or above zero whatever the concurrency.
"""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor
from domain.errors import (
    CouponExpired,
    CouponUsed,
    CouponWrongCourseType,
    CourseTypeRequired,
    InsufficientBalance,
    NotFound,
    NotGrantable,
)
from domain.payment import Payment
from domain.rules import BookingRules, price
from domain.words import Asset, CourseType
from store import stone_campaigns
from store.models import Account, Class, ClassRequest, Coupon, LedgerEntry
from store.people import get_student

STONES_KEY = ""


@dataclass(frozen=True)
class Charge:
    asset: Asset
    key: str
    amount: int


async def deposit(
    session: AsyncSession,
    student_id: int,
    charge: Charge,
    reason: str,
    actor: Actor,
    now: datetime,
    *,
    class_id: int | None = None,
    request_id: int | None = None,
) -> None:
    stmt = insert(Account).values(
        student_id=student_id, asset=charge.asset, key=charge.key, balance=charge.amount
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Account.student_id, Account.asset, Account.key],
            set_={"balance": Account.balance + stmt.excluded.balance},
        )
    )
    _entry(session, student_id, charge, charge.amount, reason, actor, now, class_id, request_id)


async def withdraw(
    session: AsyncSession,
    student_id: int,
    charge: Charge,
    reason: str,
    actor: Actor,
    now: datetime,
    *,
    class_id: int | None = None,
    request_id: int | None = None,
) -> None:
    taken = await session.scalar(
        update(Account)
        .where(
            Account.student_id == student_id,
            Account.asset == charge.asset,
            Account.key == charge.key,
            Account.balance >= charge.amount,
        )
        .values(balance=Account.balance - charge.amount)
        .returning(Account.balance)
    )
    if taken is None:
        if charge.asset is Asset.coupon:
            raise CouponUsed("the coupon was already used", coupon_id=int(charge.key))
        raise InsufficientBalance(
            f"not enough {charge.asset.value}",
            asset=charge.asset.value,
            key=charge.key,
            needed=charge.amount,
        )
    _entry(session, student_id, charge, -charge.amount, reason, actor, now, class_id, request_id)


def _entry(
    session: AsyncSession,
    student_id: int,
    charge: Charge,
    delta: int,
    reason: str,
    actor: Actor,
    now: datetime,
    class_id: int | None,
    request_id: int | None,
) -> None:
    session.add(
        LedgerEntry(
            student_id=student_id,
            asset=charge.asset,
            key=charge.key,
            delta=delta,
            reason=reason,
            class_id=class_id,
            request_id=request_id,
            channel=actor.channel.value,
            actor_id=actor.id,
            occurred_at=now,
        )
    )


async def charge_for(
    session: AsyncSession,
    student_id: int,
    course_type: CourseType,
    payment: Payment,
    now: datetime,
    rules: BookingRules,
) -> Charge:
    """What a booking of this course type made at `now` costs with this payment (in stones, the
    campaign price then, TCH-7); checks the coupon."""
    if payment.asset is Asset.credit:
        return Charge(Asset.credit, course_type.value, price(Asset.credit, course_type, rules))
    if payment.asset is Asset.stones:
        return Charge(
            Asset.stones,
            STONES_KEY,
            await stone_campaigns.stone_price(session, course_type, now, rules),
        )
    coupon = await session.get(Coupon, payment.coupon_id)
    if coupon is None or coupon.student_id != student_id:
        raise NotFound("coupon", payment.coupon_id)
    if coupon.course_type != course_type:
        raise CouponWrongCourseType(
            "the coupon is for another course type",
            coupon_id=coupon.id,
            coupon_course_type=coupon.course_type.value,
            course_type=course_type.value,
        )
    if coupon.expires_at <= now:
        raise CouponExpired(
            "the coupon has expired", coupon_id=coupon.id, expires_at=coupon.expires_at.isoformat()
        )
    return Charge(Asset.coupon, str(coupon.id), 1)


def charge_of(paid: Class | ClassRequest) -> Charge:
    """What a class or a class request was paid (or is held) with."""
    return Charge(paid.payment_asset, paid.payment_key, paid.payment_amount)


async def grant(
    session: AsyncSession,
    student_id: int,
    asset: Asset,
    amount: int,
    course_type: CourseType | None,
    actor: Actor,
    now: datetime,
) -> None:
    """Staff add credits of a course type, or energy stones."""
    await get_student(session, student_id)
    if asset is Asset.credit:
        if course_type is None:
            raise CourseTypeRequired("credits are granted for a course type", field="course_type")
        charge = Charge(asset, course_type.value, amount)
    elif asset is Asset.stones:
        charge = Charge(asset, STONES_KEY, amount)
    else:
        raise NotGrantable("coupons are granted one by one with their own route", asset=asset.value)
    await deposit(session, student_id, charge, "grant", actor, now)


async def grant_coupon(
    session: AsyncSession,
    student_id: int,
    course_type: CourseType,
    expires_at: datetime,
    actor: Actor,
    now: datetime,
) -> Coupon:
    await get_student(session, student_id)
    if expires_at <= now:
        raise CouponExpired("a coupon must expire in the future", expires_at=expires_at.isoformat())
    coupon = Coupon(
        student_id=student_id, course_type=course_type, expires_at=expires_at, created_at=now
    )
    session.add(coupon)
    await session.flush()
    await deposit(session, student_id, Charge(Asset.coupon, str(coupon.id), 1), "grant", actor, now)
    return coupon


@dataclass
class Balances:
    credits: dict[str, int] = field(default_factory=dict)
    stones: int = 0
    coupons: list[tuple[Coupon, bool]] = field(default_factory=list)


async def balances(session: AsyncSession, student_id: int, now: datetime) -> Balances:
    await get_student(session, student_id)
    result = Balances()
    accounts = await session.scalars(select(Account).where(Account.student_id == student_id))
    unused: set[str] = set()
    for account in accounts:
        if account.asset is Asset.credit:
            result.credits[account.key] = account.balance
        elif account.asset is Asset.stones:
            result.stones = account.balance
        elif account.balance:
            unused.add(account.key)
    coupons = await session.scalars(
        select(Coupon).where(Coupon.student_id == student_id).order_by(Coupon.id)
    )
    result.coupons = [(c, str(c.id) in unused and c.expires_at > now) for c in coupons]
    return result


async def entries(
    session: AsyncSession, student_id: int, limit: int, before_id: int | None
) -> list[LedgerEntry]:
    await get_student(session, student_id)
    query = select(LedgerEntry).where(LedgerEntry.student_id == student_id)
    if before_id is not None:
        query = query.where(LedgerEntry.id < before_id)
    rows = await session.scalars(query.order_by(LedgerEntry.id.desc()).limit(limit))
    return list(rows)


async def ledger_disagreements(session: AsyncSession) -> list[tuple[int, str, str, int, int]]:
    """Accounts whose balance differs from the sum of their ledger entries (should be none)."""
    sums = (
        select(
            LedgerEntry.student_id,
            LedgerEntry.asset,
            LedgerEntry.key,
            func.sum(LedgerEntry.delta).label("total"),
        )
        .group_by(LedgerEntry.student_id, LedgerEntry.asset, LedgerEntry.key)
        .subquery()
    )
    rows = await session.execute(
        select(Account.student_id, Account.asset, Account.key, Account.balance, sums.c.total)
        .join(
            sums,
            (sums.c.student_id == Account.student_id)
            & (sums.c.asset == Account.asset)
            & (sums.c.key == Account.key),
            full=True,
        )
        .where(func.coalesce(Account.balance, 0) != func.coalesce(sums.c.total, 0))
    )
    return [tuple(r) for r in rows]
