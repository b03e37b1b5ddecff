"""Timeslots: teachers open and close them, bookings take them (ARCHITECTURE rule 1).

A slot is taken only by a conditional UPDATE (`state = 'open'` and the booker matches its
direction); the partial unique index keeps one live slot per teacher and start.
"""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from yueke.domain.channels import Actor
from yueke.domain.errors import (
    HoldExpired,
    NotFound,
    SlotAlreadyBooked,
    SlotNotOpen,
    SlotReserved,
)
from yueke.domain.rules import BookingRules, check_teacher_can_open
from yueke.domain.words import CourseType, Direction, TimeslotState
from yueke.store import audit
from yueke.store.models import Teacher, Timeslot
from yueke.store.people import get_teacher


async def open_timeslots(
    session: AsyncSession,
    *,
    teacher_id: int,
    starts: Sequence[datetime],
    actor: Actor,
    now: datetime,
    rules: BookingRules,
    direction: Direction = Direction.general,
    target: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[list[Timeslot], list[datetime]]:
    """Open the teacher's slots; starts that already have a live slot are skipped, not errors."""
    await get_teacher(session, teacher_id)
    for start_at in starts:
        check_teacher_can_open(start_at, now, rules)
    rows = [
        {
            "teacher_id": teacher_id,
            "start_at": start_at,
            "state": TimeslotState.open,
            "direction": direction,
            "direction_target": target,
            "expires_at": expires_at,
            "created_at": now,
            "updated_at": now,
        }
        for start_at in sorted(set(starts))
    ]
    stmt = (
        insert(Timeslot)
        .values(rows)
        .on_conflict_do_nothing(
            index_elements=[Timeslot.teacher_id, Timeslot.start_at],
            index_where=text("state <> 'removed'"),
        )
        .returning(Timeslot)
    )
    opened = list(await session.scalars(stmt))
    opened.sort(key=lambda slot: slot.start_at)
    await audit.record(
        session,
        "timeslot",
        (slot.id for slot in opened),
        "opened",
        actor,
        now,
        direction=direction.value,
        target=target,
    )
    taken = {slot.start_at for slot in opened}
    return opened, [row["start_at"] for row in rows if row["start_at"] not in taken]


async def close_timeslots(
    session: AsyncSession,
    *,
    teacher_id: int,
    timeslot_ids: Sequence[int],
    actor: Actor,
    now: datetime,
) -> list[Timeslot]:
    """Remove open, unbooked slots: all of them or, if any is not open, none."""
    wanted = set(timeslot_ids)
    closed = list(
        await session.scalars(
            update(Timeslot)
            .where(
                Timeslot.id.in_(wanted),
                Timeslot.teacher_id == teacher_id,
                Timeslot.state == TimeslotState.open,
            )
            .values(state=TimeslotState.removed, updated_at=now)
            .returning(Timeslot)
        )
    )
    if missing := wanted - {slot.id for slot in closed}:
        slot = await get_timeslot(session, min(missing))
        if slot.teacher_id != teacher_id:
            raise NotFound("timeslot", slot.id)
        raise _not_open(slot)
    await audit.record(session, "timeslot", sorted(wanted), "closed", actor, now)
    return sorted(closed, key=lambda slot: slot.start_at)


def _bookable_by(student_id: int, now: datetime) -> ColumnElement[bool]:
    """General slots, and slots held for this student that have not expired."""
    return or_(
        Timeslot.direction == Direction.general,
        and_(
            Timeslot.direction == Direction.student,
            Timeslot.direction_target == str(student_id),
            or_(Timeslot.expires_at.is_(None), Timeslot.expires_at > now),
        ),
    )


async def take_slot(
    session: AsyncSession, timeslot_id: int, *, student_id: int, now: datetime
) -> Timeslot:
    """Mark an open slot booked for this student, or say exactly why it cannot be."""
    slot = await session.scalar(
        update(Timeslot)
        .where(
            Timeslot.id == timeslot_id,
            Timeslot.state == TimeslotState.open,
            _bookable_by(student_id, now),
        )
        .values(state=TimeslotState.booked, updated_at=now)
        .returning(Timeslot)
    )
    if slot is not None:
        return slot
    slot = await get_timeslot(session, timeslot_id)
    if slot.state is not TimeslotState.open:
        raise _not_open(slot)
    if slot.direction is Direction.student and slot.direction_target == str(student_id):
        raise HoldExpired(
            "the hold for this student has expired",
            timeslot_id=slot.id,
            expired_at=slot.expires_at.isoformat() if slot.expires_at else None,
        )
    raise SlotReserved(
        "the timeslot is reserved for someone else",
        timeslot_id=slot.id,
        direction=slot.direction.value,
    )


def _not_open(slot: Timeslot) -> SlotAlreadyBooked | SlotNotOpen:
    if slot.state is TimeslotState.booked:
        return SlotAlreadyBooked("the timeslot is already booked", timeslot_id=slot.id)
    return SlotNotOpen("the timeslot is not open", timeslot_id=slot.id, state=slot.state.value)


async def give_back(session: AsyncSession, timeslot_id: int, now: datetime) -> None:
    """A class cancelled before its start frees its slot, with the slot's direction kept."""
    await session.execute(
        update(Timeslot)
        .where(Timeslot.id == timeslot_id, Timeslot.state == TimeslotState.booked)
        .values(state=TimeslotState.open, updated_at=now)
    )


async def availability(
    session: AsyncSession,
    *,
    start_from: datetime,
    start_to: datetime,
    teacher_id: int | None,
    course_type: CourseType | None,
    for_student: int | None,
    now: datetime,
    limit: int,
) -> list[Timeslot]:
    """Open slots a student could book: general ones, and with for_student that student's holds."""
    query = select(Timeslot).where(
        Timeslot.state == TimeslotState.open,
        Timeslot.start_at >= max(start_from, now),
        Timeslot.start_at < start_to,
        _bookable_by(for_student, now)
        if for_student is not None
        else Timeslot.direction == Direction.general,
    )
    if teacher_id is not None:
        query = query.where(Timeslot.teacher_id == teacher_id)
    if course_type is not None:
        query = query.join(Teacher, Teacher.id == Timeslot.teacher_id).where(
            Teacher.course_types.any(course_type.value)
        )
    rows = await session.scalars(
        query.order_by(Timeslot.start_at, Timeslot.teacher_id).limit(limit)
    )
    return list(rows)


async def get_timeslot(session: AsyncSession, timeslot_id: int) -> Timeslot:
    slot = await session.get(Timeslot, timeslot_id)
    if slot is None:
        raise NotFound("timeslot", timeslot_id)
    return slot
