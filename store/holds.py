"""Teacher-cancel holds (TCH-5): the teacher cancels a class and offers other times, each held
for that student until the hold expires; booking one removes the others."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor
from domain.errors import (
    ClassNotCancellable,
    ForbiddenActor,
    HoldClosed,
    HoldUntilOutOfRange,
    NotFound,
    OpenClassSeat,
)
from domain.rules import BookingRules, check_on_grid, check_student_can_book
from domain.words import ClassState, Direction, HoldState, PenaltyKind, TimeslotState
from store import audit, classes, inventory, penalties
from store.db import get_or_404
from store.models import Class, TeacherCancel, Timeslot

FLOW = "teacher-cancel-"


def flow_id(class_id: int) -> str:
    """The hold's workflow id, also the origin of its offered slots."""
    return f"{FLOW}{class_id}"


def check_teacher_cancels(found: Class) -> None:
    """The teacher's cancel (TCH-5) takes a booked 1-on-1 class with its teacher."""
    if found.state is not ClassState.booked or found.teacher_id is None:
        raise ClassNotCancellable(
            "the class is not booked with a teacher", class_id=found.id, state=found.state
        )
    if found.open_class_id is not None:
        raise OpenClassSeat(
            "a seat of an open class is not cancelled by its teacher",
            class_id=found.id,
            open_class_id=found.open_class_id,
        )


def is_offered(slot: Timeslot) -> bool:
    """Held for the student by a teacher-cancel hold (a slot that was offered and has since
    become general inventory keeps its origin, but is no longer held)."""
    return (
        slot.direction is Direction.student
        and slot.origin is not None
        and slot.origin.startswith(FLOW)
    )


async def cancel_by_teacher(
    session: AsyncSession,
    *,
    class_id: int,
    teacher_id: int,
    offered: Sequence[datetime],
    reason: str | None,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> tuple[TeacherCancel, list[Timeslot]]:
    """Cancel the class with a full refund, keep the record, penalise the teacher
    (`teacher_cancel`), and hold each offered time.

    Each offered time must be one the student can book now (on the grid, 1 h to 4 weeks
    ahead: the student's booking window, not the teacher's 8 weeks), or it could never be
    booked."""
    booked = await classes.get_class(session, class_id)
    check_teacher_cancels(booked)
    if booked.teacher_id != teacher_id:
        raise ForbiddenActor("only the class's teacher cancels it", class_id=class_id)
    for start_at in offered:
        check_on_grid(start_at)
        check_student_can_book(start_at, now, rules)
    await classes.cancel_class(
        session,
        class_id=class_id,
        reason=reason,
        actor=actor,
        now=now,
        rules=rules,
        by_teacher=True,
    )
    expires_at = now + rules.teacher_cancel_hold
    record = TeacherCancel(
        class_id=class_id,
        teacher_id=teacher_id,
        student_id=booked.student_id,
        reason=reason,
        state=HoldState.holding if offered else HoldState.ended,
        expires_at=expires_at,
        channel=actor.channel.value,
        actor_id=actor.id,
        created_at=now,
        updated_at=now,
    )
    session.add(record)
    await session.flush()
    await audit.record(
        session,
        "hold",
        [class_id],
        "started" if offered else "ended",
        actor,
        now,
        expires_at=expires_at.isoformat(),
        offered=[s.isoformat() for s in sorted(set(offered))],
    )
    penalties.record(
        session,
        teacher_id=teacher_id,
        class_id=class_id,
        kind=PenaltyKind.teacher_cancel,
        reason=reason,
        actor=actor,
        now=now,
    )
    slots = [
        await inventory.claim_at(
            session,
            teacher_id=teacher_id,
            start_at=start_at,
            state=TimeslotState.open,
            direction=Direction.student,
            target=str(booked.student_id),
            origin=flow_id(class_id),
            # Held until the hold expires or the slot starts, whichever comes first.
            expires_at=min(expires_at, start_at),
            now=now,
        )
        for start_at in sorted(set(offered))
    ]
    await audit.record(
        session, "timeslot", [s.id for s in slots], "held", actor, now, for_class=class_id
    )
    await session.flush()
    return record, slots


async def held_slot_booked(
    session: AsyncSession, slot: Timeslot, booked: Class, actor: Actor, now: datetime
) -> None:
    """Called in the booking transaction: the student took one offered slot."""
    record = await session.scalar(
        update(TeacherCancel)
        .where(
            TeacherCancel.class_id == int((slot.origin or "").removeprefix(FLOW)),
            TeacherCancel.state == HoldState.holding,
        )
        .values(state=HoldState.booked, booked_class_id=booked.id, updated_at=now)
        .returning(TeacherCancel)
    )
    if record is not None:
        await audit.record(
            session, "hold", [record.class_id], "booked", actor, now, class_id=booked.id
        )
        await _remove_open(session, record.class_id, actor, now, "hold_booked")


async def close_hold(
    session: AsyncSession, class_id: int, state: HoldState, actor: Actor, now: datetime
) -> TeacherCancel:
    """The timer expired the hold, or fireman ended it: what is still open is removed.

    One conditional UPDATE (`WHERE state = 'holding'`): a hold that a booking (or another
    close) changed first is left as it is and returned as it now stands, never overwritten.
    """
    record = await _while_holding(session, class_id, state=state, updated_at=now)
    if record is None:
        return await _current(session, class_id)
    await audit.record(session, "hold", [class_id], state.value, actor, now)
    await _remove_open(session, class_id, actor, now, f"hold_{state.value}")
    return record


async def extend_hold(
    session: AsyncSession,
    class_id: int,
    until: datetime,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> TeacherCancel:
    """Fireman moves the expiry, only while the hold is holding (one conditional UPDATE).

    `until` is after now, no later than the start of the last offered slot still open (after
    that nothing is left to book) nor `teacher_cancel_hold_max` (7 days) after the teacher's
    cancel: else 422 hold_until_out_of_range. Each open offered slot is then held until
    `until` or its own start, whichever comes first (PostgreSQL checks a held slot's expiry is
    not past its start)."""
    current = await _current(session, class_id)
    if current.state is HoldState.holding:
        last_start = await session.scalar(
            select(func.max(Timeslot.start_at)).where(
                Timeslot.origin == flow_id(class_id), Timeslot.state == TimeslotState.open
            )
        )
        latest = current.created_at + rules.teacher_cancel_hold_max
        if last_start is not None:
            latest = min(latest, last_start)
        if not now < until <= latest:
            raise HoldUntilOutOfRange(
                "a hold is extended to after now, at most to its last offered slot's start "
                "and its longest hold",
                class_id=class_id,
                until=until.isoformat(),
                earliest=now.isoformat(),
                latest=latest.isoformat(),
            )
    record = await _while_holding(session, class_id, expires_at=until, updated_at=now)
    if record is None:
        current = await _current(session, class_id)
        raise HoldClosed("the hold is over", class_id=class_id, state=current.state.value)
    extended = await session.scalars(
        update(Timeslot)
        .where(Timeslot.origin == flow_id(class_id), Timeslot.state == TimeslotState.open)
        .values(expires_at=func.least(until, Timeslot.start_at), updated_at=now)
        .returning(Timeslot.id)
    )
    await audit.record(
        session, "timeslot", list(extended), "hold_extended", actor, now, until=until.isoformat()
    )
    return record


async def get_hold(session: AsyncSession, class_id: int) -> TeacherCancel:
    return await get_or_404(session, TeacherCancel, "teacher_cancel", class_id)


async def _while_holding(
    session: AsyncSession, class_id: int, **values: object
) -> TeacherCancel | None:
    """Change the hold if it is still holding when this statement runs; None otherwise."""
    record: TeacherCancel | None = await session.scalar(
        update(TeacherCancel)
        .where(TeacherCancel.class_id == class_id, TeacherCancel.state == HoldState.holding)
        .values(**values)
        .returning(TeacherCancel)
        .execution_options(populate_existing=True)
    )
    return record


async def _current(session: AsyncSession, class_id: int) -> TeacherCancel:
    """The hold as committed now, not as this session read it before."""
    record: TeacherCancel | None = await session.scalar(
        select(TeacherCancel)
        .where(TeacherCancel.class_id == class_id)
        .execution_options(populate_existing=True)
    )
    if record is None:
        raise NotFound("teacher_cancel", class_id)
    return record


async def offered_slots(session: AsyncSession, class_id: int) -> list[Timeslot]:
    return await inventory.slots_of_origin(session, flow_id(class_id))


async def _remove_open(
    session: AsyncSession, class_id: int, actor: Actor, now: datetime, action: str
) -> None:
    removed = await session.scalars(
        update(Timeslot)
        .where(Timeslot.origin == flow_id(class_id), Timeslot.state == TimeslotState.open)
        .values(state=TimeslotState.removed, updated_at=now)
        .returning(Timeslot.id)
    )
    await audit.record(session, "timeslot", list(removed), action, actor, now)
