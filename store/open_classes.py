"""Open classes (CUR-2, CLS-1): made on a teacher's free timeslot, described, listed and priced
by curriculum or the classroom; seats booked by students (PAR-2, H5-2); replays bought.

PostgreSQL keeps the seat count: a seat is taken by a guarded UPDATE of `seats_taken`
(`< capacity`, on a listed class not about to start) under the CHECK `seats_within_capacity`,
and given back by the trigger `open_class_seat_freed` when the seat's class is cancelled (the
ordinary cancel, PAR-3 / H5-5, with its 24 h refund rule). Each seat is a class, so the index
of one live class per student and start refuses a second seat and any other class then.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor
from domain.errors import (
    AlreadySeated,
    ClassStarted,
    InPast,
    NotFound,
    OpenClassFull,
    OpenClassHasSeats,
    OpenClassNotListed,
    OpenClassNotOver,
    OutsideWindow,
    ReplayAlreadyBought,
    ReplayNotForSale,
    SlotAlreadyBooked,
    SlotNotOpen,
    SlotReserved,
    StudentBusy,
)
from domain.open_class import ReplayPrice, check_seat_payment, is_over, over_at
from domain.payment import Payment
from domain.rules import BookingRules
from domain.words import Asset, ClassState, CourseType, Direction, TimeslotState
from store import audit, classes, inventory, ledger
from store.db import get_or_404
from store.models import Class, OpenClass, OpenClassReplay, Timeslot
from store.people import get_student

ENTITY = "open_class"


async def create(
    session: AsyncSession,
    *,
    timeslot_id: int,
    title: str,
    description: str,
    capacity: int,
    actor: Actor,
    now: datetime,
) -> OpenClass:
    """CUR-2, CLS-1: the teacher's open general slot becomes the open class's (state `booked`,
    so nobody books it alone and the teacher cannot close it). Made unlisted."""
    taken = (
        await session.execute(
            update(Timeslot)
            .where(
                Timeslot.id == timeslot_id,
                Timeslot.state == TimeslotState.open,
                Timeslot.direction == Direction.general,
                Timeslot.start_at > now,
            )
            .values(state=TimeslotState.booked, updated_at=now)
            .returning(Timeslot.teacher_id, Timeslot.start_at)
        )
    ).one_or_none()
    if taken is None:
        await _refuse_slot(session, timeslot_id, now)
    assert taken is not None
    made = OpenClass(
        timeslot_id=timeslot_id,
        teacher_id=taken.teacher_id,
        start_at=taken.start_at,
        title=title,
        description=description,
        capacity=capacity,
        seats_taken=0,
        listed=False,
        channel=actor.channel.value,
        actor_id=actor.id,
        created_at=now,
        updated_at=now,
    )
    session.add(made)
    await session.flush()
    await audit.record(
        session, "timeslot", [timeslot_id], "open_class", actor, now, open_class_id=made.id
    )
    await audit.record(
        session,
        ENTITY,
        [made.id],
        "created",
        actor,
        now,
        timeslot_id=timeslot_id,
        title=title,
        capacity=capacity,
    )
    return made


async def _refuse_slot(session: AsyncSession, timeslot_id: int, now: datetime) -> None:
    """Why the slot could not become an open class: the teacher is not free then."""
    slot = await inventory.get_timeslot(session, timeslot_id)
    details = {"timeslot_id": timeslot_id}
    if slot.start_at <= now:
        raise InPast("the timeslot has started", start_at=slot.start_at.isoformat(), **details)
    if slot.state is TimeslotState.booked:
        raise SlotAlreadyBooked("the timeslot is already booked", **details)
    if slot.state is not TimeslotState.open:
        raise SlotNotOpen("the timeslot is not open", state=slot.state.value, **details)
    raise SlotReserved(
        "the timeslot is directed at someone", direction=slot.direction.value, **details
    )


async def get(session: AsyncSession, open_class_id: int, *, listed_only: bool = False) -> OpenClass:
    """The open class; for a parent (`listed_only`) a class not listed does not exist."""
    found = await get_or_404(session, OpenClass, ENTITY, open_class_id)
    if listed_only and not found.listed:
        raise NotFound(ENTITY, open_class_id)
    return found


async def listing(
    session: AsyncSession,
    *,
    upcoming_listed_at: datetime | None,
    listed: bool | None,
    start_from: datetime | None,
    start_to: datetime | None,
    limit: int,
) -> list[OpenClass]:
    """By start. Parents see the listed classes not started at `upcoming_listed_at`; staff
    (None) every class, or the listed or delisted ones (`listed`)."""
    query = select(OpenClass)
    if upcoming_listed_at is not None:
        query = query.where(OpenClass.listed, OpenClass.start_at > upcoming_listed_at)
    elif listed is not None:
        query = query.where(OpenClass.listed == listed)
    if start_from is not None:
        query = query.where(OpenClass.start_at >= start_from)
    if start_to is not None:
        query = query.where(OpenClass.start_at <= start_to)
    rows = await session.scalars(query.order_by(OpenClass.start_at, OpenClass.id).limit(limit))
    return list(rows)


async def edit(
    session: AsyncSession,
    open_class_id: int,
    *,
    title: str | None,
    description: str | None,
    capacity: int | None,
    actor: Actor,
    now: datetime,
) -> OpenClass:
    """CUR-2, CLS-1: before the start. While no seat is taken anything may change; once one is,
    title and description are fixed and the capacity may only grow (never below the seats
    taken, whatever the concurrency: the UPDATE's guard and the CHECK)."""
    changes = {
        k: v
        for k, v in (("title", title), ("description", description), ("capacity", capacity))
        if v is not None
    }
    allowed: ColumnElement[bool] = OpenClass.seats_taken == 0
    if title is None and description is None and capacity is not None:
        allowed = or_(allowed, OpenClass.capacity <= capacity)
    edited: OpenClass | None = await session.scalar(
        update(OpenClass)
        .where(OpenClass.id == open_class_id, OpenClass.start_at > now, allowed)
        .values(**changes, updated_at=now)
        .returning(OpenClass)
    )
    if edited is None:
        found = await get(session, open_class_id)
        _check_not_started(found, now)
        raise OpenClassHasSeats(
            "once a seat is taken, only a larger capacity may be set",
            open_class_id=open_class_id,
            seats_taken=found.seats_taken,
            capacity=found.capacity,
        )
    await audit.record(session, ENTITY, [open_class_id], "edited", actor, now, **changes)
    return edited


def _check_not_started(found: OpenClass, now: datetime) -> None:
    if found.start_at <= now:
        raise ClassStarted(
            "the open class has already started",
            open_class_id=found.id,
            start_at=found.start_at.isoformat(),
        )


async def set_listed(
    session: AsyncSession, open_class_id: int, *, listed: bool, actor: Actor, now: datetime
) -> OpenClass:
    """CUR-2, CLS-1: list (parents see it and may book) or delist (seats already taken stay)
    before the start."""
    changed: OpenClass | None = await session.scalar(
        update(OpenClass)
        .where(OpenClass.id == open_class_id, OpenClass.start_at > now)
        .values(listed=listed, updated_at=now)
        .returning(OpenClass)
    )
    if changed is None:
        _check_not_started(await get(session, open_class_id), now)
    assert changed is not None
    await audit.record(
        session, ENTITY, [open_class_id], "listed" if listed else "delisted", actor, now
    )
    return changed


async def set_replay_price(
    session: AsyncSession, open_class_id: int, *, price: ReplayPrice, actor: Actor, now: datetime
) -> OpenClass:
    """CUR-2: the replay's price, at any time; purchases made keep what they paid."""
    changed: OpenClass | None = await session.scalar(
        update(OpenClass)
        .where(OpenClass.id == open_class_id)
        .values(replay_asset=price.asset, replay_price=price.amount, updated_at=now)
        .returning(OpenClass)
    )
    if changed is None:
        raise NotFound(ENTITY, open_class_id)
    await audit.record(
        session,
        ENTITY,
        [open_class_id],
        "replay_priced",
        actor,
        now,
        asset=price.asset.value,
        amount=price.amount,
    )
    return changed


async def book_seat(
    session: AsyncSession,
    *,
    open_class_id: int,
    student_id: int,
    payment: Payment,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
    listed_only: bool = False,
) -> Class:
    """PAR-2, H5-2, CLS-1: a seat, paid as an ordinary booking of course type `open` (credit or
    a coupon), on a listed class at least the booking lead (1 h) before its start. For a parent
    (`listed_only`) a class not listed does not exist, as in `get`."""
    check_seat_payment(payment)
    await get_student(session, student_id)
    seated: OpenClass | None = await session.scalar(
        update(OpenClass)
        .where(
            OpenClass.id == open_class_id,
            OpenClass.listed,
            OpenClass.start_at >= now + rules.student_book_min_lead,
            OpenClass.seats_taken < OpenClass.capacity,
        )
        .values(seats_taken=OpenClass.seats_taken + 1, updated_at=now)
        .returning(OpenClass)
    )
    if seated is None:
        await _refuse_seat(session, open_class_id, now, rules, listed_only=listed_only)
    assert seated is not None
    charge = await ledger.charge_for(session, student_id, CourseType.open, payment, now, rules)
    try:
        booked = await classes.paid_class(
            session,
            student_id=student_id,
            teacher_id=seated.teacher_id,
            timeslot_id=None,
            start_at=seated.start_at,
            course_type=CourseType.open,
            charge=charge,
            lesson=None,
            actor=actor,
            now=now,
            open_class_id=seated.id,
        )
    except StudentBusy:
        if await _has_seat(session, open_class_id, student_id):
            raise AlreadySeated(
                "the student already has a seat in this open class",
                open_class_id=open_class_id,
                student_id=student_id,
            ) from None
        raise
    await audit.record(
        session,
        "class",
        [booked.id],
        "booked",
        actor,
        now,
        open_class_id=open_class_id,
        payment=charge.asset.value,
        amount=charge.amount,
    )
    await audit.record(
        session,
        ENTITY,
        [open_class_id],
        "seat_taken",
        actor,
        now,
        class_id=booked.id,
        student_id=student_id,
    )
    return booked


async def _refuse_seat(
    session: AsyncSession,
    open_class_id: int,
    now: datetime,
    rules: BookingRules,
    *,
    listed_only: bool,
) -> None:
    found = await get(session, open_class_id, listed_only=listed_only)
    if not found.listed:
        raise OpenClassNotListed("the open class is not listed", open_class_id=open_class_id)
    _check_not_started(found, now)
    if found.start_at < now + rules.student_book_min_lead:
        raise OutsideWindow(
            "an open class is booked at least the booking lead before its start",
            open_class_id=open_class_id,
            start_at=found.start_at.isoformat(),
            latest=(found.start_at - rules.student_book_min_lead).isoformat(),
        )
    raise OpenClassFull(
        "every seat of the open class is taken",
        open_class_id=open_class_id,
        capacity=found.capacity,
    )


async def _has_seat(session: AsyncSession, open_class_id: int, student_id: int) -> bool:
    """The student has a live seat (a class of the open class, not cancelled)."""
    seat = exists().where(
        Class.open_class_id == open_class_id,
        Class.student_id == student_id,
        Class.state != ClassState.cancelled,
    )
    return bool(await session.scalar(select(seat)))


@dataclass(frozen=True)
class Replay:
    replay: OpenClassReplay
    open_class: OpenClass


async def buy_replay(
    session: AsyncSession, *, open_class_id: int, student_id: int, actor: Actor, now: datetime
) -> Replay:
    """PAR-2: once the class is over, a student buys its replay at its price, once; a student
    who had a seat (not cancelled) gets it free."""
    found = await get(session, open_class_id)
    await get_student(session, student_id)
    if not is_over(found.start_at, now):
        raise OpenClassNotOver(
            "the replay exists once the open class is over",
            open_class_id=open_class_id,
            over_at=over_at(found.start_at).isoformat(),
        )
    attended = await _has_seat(session, open_class_id, student_id)
    if not attended and found.replay_asset is None:
        raise ReplayNotForSale("the replay has no price yet", open_class_id=open_class_id)
    asset = None if attended else found.replay_asset
    amount = 0 if attended or found.replay_price is None else found.replay_price
    bought: OpenClassReplay | None = await session.scalar(
        insert(OpenClassReplay)
        .values(
            open_class_id=open_class_id,
            student_id=student_id,
            attended=attended,
            payment_asset=asset,
            payment_amount=amount,
            channel=actor.channel.value,
            actor_id=actor.id,
            created_at=now,
        )
        .on_conflict_do_nothing()
        .returning(OpenClassReplay)
    )
    if bought is None:
        raise ReplayAlreadyBought(
            "the student already has this replay",
            open_class_id=open_class_id,
            student_id=student_id,
        )
    if asset is not None:
        key = CourseType.open.value if asset is Asset.credit else ledger.STONES_KEY
        await ledger.withdraw(
            session, student_id, ledger.Charge(asset, key, amount), "replay", actor, now
        )
    await audit.record(
        session,
        ENTITY,
        [open_class_id],
        "replay_bought",
        actor,
        now,
        student_id=student_id,
        attended=attended,
        payment=asset.value if asset is not None else None,
        amount=amount,
    )
    return Replay(bought, found)


async def replays_of(session: AsyncSession, student_id: int) -> Sequence[Replay]:
    """The replays a student may watch, newest class first."""
    await get_student(session, student_id)
    rows = await session.execute(
        select(OpenClassReplay, OpenClass)
        .join(OpenClass, OpenClass.id == OpenClassReplay.open_class_id)
        .where(OpenClassReplay.student_id == student_id)
        .order_by(OpenClass.start_at.desc(), OpenClass.id.desc())
    )
    return [Replay(r, c) for r, c in rows.tuples()]
