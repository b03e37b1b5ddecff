"""Timeslots: teachers open and close them, bookings take them (ARCHITECTURE rule 1).

A slot is taken only by a conditional UPDATE (`state = 'open'` and the booker matches its
direction); the partial unique index keeps one live slot per teacher and start.
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, false, or_, select, text, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from domain.channels import Actor
from domain.errors import (
    DinoHomePriority,
    HoldExpired,
    InPast,
    NotFound,
    OutsideWindow,
    SlotAlreadyBooked,
    SlotForProduct,
    SlotNotOpen,
    SlotReserved,
    TeacherBusy,
)
from domain.rules import BookingRules, check_on_grid, check_teacher_can_open
from domain.week_pattern import LocalStart, PatternTime, local_starts
from domain.words import CourseType, Direction, Product, TimeslotState
from store import audit, dino_home, exclusive, fake_cancels
from store.db import Sessions, fetch_at_once, get_or_404
from store.models import ClassRequest, Timeslot
from store.people import get_teacher


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
    origin: str | None = None,
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
            "origin": origin,
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
        origin=origin,
    )
    taken = {slot.start_at for slot in opened}
    return opened, [start for start in sorted(set(starts)) if start not in taken]


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
        raise not_open(slot)
    await audit.record(session, "timeslot", sorted(wanted), "closed", actor, now)
    return sorted(closed, key=lambda slot: slot.start_at)


def _bookable_by(
    student_id: int, now: datetime, channel: str | None, product: Product | None
) -> ColumnElement[bool]:
    """General slots, slots held for this student that have not expired, slots a fake
    cancel holds for this channel (anyone's once expired), and slots directed at the booking's
    product (INT-1)."""
    return or_(
        Timeslot.direction == Direction.general,
        and_(
            Timeslot.direction == Direction.student,
            Timeslot.direction_target == str(student_id),
            or_(Timeslot.expires_at.is_(None), Timeslot.expires_at > now),
        ),
        fake_cancels.bookable_by_channel(channel, now),
        and_(Timeslot.direction == Direction.product, Timeslot.direction_target == product.value)
        if product is not None
        else false(),
    )


async def take_slot(
    session: AsyncSession,
    timeslot_id: int,
    *,
    student_id: int,
    now: datetime,
    rules: BookingRules | None = None,
    channel: str | None = None,
    product: Product | None = None,
) -> Timeslot:
    """Mark an open slot booked for this student, or say exactly why it cannot be.

    With the booking channel, a slot a fake cancel holds for that channel (TMK-4, CC-4) may be
    taken too; with the booking's product, a slot directed at that product (INT-1), and a slot
    directed at a product is refused any other booking (`slot_for_product`).

    With rules, the exclusive-teacher priority window (SD-2) and the dino-home window (SD-3:
    `dino_home_priority` when it alone refuses) apply too.

    The conditional UPDATE sees the slot as it was when it started; a cancel may have freed it
    since. So a miss locks the slot as it now is and tries once more; only then, from that
    locked row, it says why not (never `slot_reserved` for a general slot someone just freed).
    """
    take = (
        update(Timeslot)
        .where(
            Timeslot.id == timeslot_id,
            Timeslot.state == TimeslotState.open,
            _bookable_by(student_id, now, channel, product),
            ~exclusive.kept_from(student_id, now, rules) if rules is not None else true(),
            ~dino_home.kept_from(student_id, now, rules) if rules is not None else true(),
        )
        .values(state=TimeslotState.booked, updated_at=now)
        .returning(Timeslot)
        .execution_options(populate_existing=True)
    )
    taken: Timeslot | None = await session.scalar(take)
    if taken is not None:
        return taken
    slot = await _lock(session, timeslot_id)
    taken = await session.scalar(take)
    if taken is not None:
        return taken
    held_for_student = slot.direction is Direction.student and slot.direction_target == str(
        student_id
    )
    expired = slot.expires_at is not None and slot.expires_at <= now
    if slot.state is not TimeslotState.open and not (held_for_student and expired):
        raise not_open(slot)
    if held_for_student:
        raise HoldExpired(
            "the hold for this student has expired",
            timeslot_id=slot.id,
            expired_at=slot.expires_at.isoformat() if slot.expires_at else None,
        )
    if slot.direction is Direction.product:
        raise SlotForProduct(
            "the timeslot is directed at a product line: only its bookings take it",
            timeslot_id=slot.id,
            product=slot.direction_target,
        )
    if rules is not None and await session.scalar(
        select(
            and_(
                dino_home.kept_from(student_id, now, rules),
                ~exclusive.kept_from(student_id, now, rules),
            )
        ).where(Timeslot.id == slot.id)
    ):
        raise DinoHomePriority(
            "until the Monday auto-booking run, next week's slots are kept for dino-home students",
            timeslot_id=slot.id,
            student_id=student_id,
        )
    raise SlotReserved(
        "the timeslot is reserved for someone else",
        timeslot_id=slot.id,
        direction=slot.direction.value,
    )


async def _lock(session: AsyncSession, timeslot_id: int) -> Timeslot:
    """The slot as committed now, locked until this transaction ends."""
    slot = await session.get(Timeslot, timeslot_id, with_for_update=True, populate_existing=True)
    if slot is None:
        raise NotFound("timeslot", timeslot_id)
    return slot


def not_open(slot: Timeslot) -> SlotAlreadyBooked | SlotNotOpen:
    if slot.state is TimeslotState.booked:
        return SlotAlreadyBooked("the timeslot is already booked", timeslot_id=slot.id)
    return SlotNotOpen("the timeslot is not open", timeslot_id=slot.id, state=slot.state.value)


async def give_back(
    session: AsyncSession, timeslot_id: int, now: datetime, *, early: bool
) -> Timeslot:
    """A class cancelled by its student frees the slot; `early`: at least the refund cutoff
    (24 h) before the start.

    A slot made by approving a class request (TCH-3) turns into general inventory if the teacher
    ticked "keep the slot" and the cancel is early, and is removed otherwise (the seed keeps it
    only for a cancel 24 h ahead; a later one leaves a time the teacher opened for one request,
    too close to sell). A slot a teacher offered after cancelling
    (TCH-5, held for this student until the hold's expiry) turns into general inventory: the
    hold is over once the student booked it, and the teacher is free then; left held, it would
    be a slot nobody could book and the teacher could not reopen. Any other slot opens again as
    it was.
    """
    slot = await session.get_one(Timeslot, timeslot_id, with_for_update=True)
    slot.state = TimeslotState.open
    slot.updated_at = now
    if slot.direction in (Direction.student, Direction.channel):
        slot.direction, slot.direction_target, slot.expires_at = Direction.general, None, None
    if slot.direction is Direction.request:
        keep = await session.scalar(
            select(ClassRequest.keep_slot).where(ClassRequest.id == int(slot.direction_target or 0))
        )
        slot.state = TimeslotState.open if keep and early else TimeslotState.removed
        slot.direction, slot.direction_target = Direction.general, None
    return slot


async def remove(session: AsyncSession, timeslot_id: int, now: datetime) -> None:
    """A slot that can no longer be taught (its teacher cancelled the class there)."""
    await session.execute(
        update(Timeslot)
        .where(Timeslot.id == timeslot_id)
        .values(state=TimeslotState.removed, updated_at=now)
    )


async def claim_at(
    session: AsyncSession,
    *,
    teacher_id: int,
    start_at: datetime,
    state: TimeslotState,
    direction: Direction,
    target: str,
    origin: str,
    now: datetime,
    expires_at: datetime | None = None,
) -> Timeslot:
    """The teacher's slot at start_at for one flow: a new one, or their open general slot
    turned over to it. TeacherBusy if the teacher's time there is already taken."""
    values = {
        "state": state,
        "direction": direction,
        "direction_target": target,
        "origin": origin,
        "expires_at": expires_at,
        "updated_at": now,
    }
    slot: Timeslot | None = await session.scalar(
        insert(Timeslot)
        .values(teacher_id=teacher_id, start_at=start_at, created_at=now, **values)
        .on_conflict_do_nothing(
            index_elements=[Timeslot.teacher_id, Timeslot.start_at],
            index_where=text("state <> 'removed'"),
        )
        .returning(Timeslot)
    )
    if slot is None:
        slot = await session.scalar(
            update(Timeslot)
            .where(
                Timeslot.teacher_id == teacher_id,
                Timeslot.start_at == start_at,
                Timeslot.state == TimeslotState.open,
                Timeslot.direction == Direction.general,
            )
            .values(**values)
            .returning(Timeslot)
        )
    if slot is None:
        raise TeacherBusy(
            "the teacher's time is already taken",
            teacher_id=teacher_id,
            start_at=start_at.isoformat(),
        )
    return slot


# Availability (PAR-1, H5-1) in one round trip, answered as the API's JSON by PostgreSQL: open
# general slots, with a student those held for them and not expired, and with a product ($13,
# INT-1) those directed at it (as `_bookable_by`),
# from max(start_from, now) to start_to, by teacher and course type; times in UTC with "Z".
# With `hide_kept` ($8), slots still kept for an exclusive teacher's students (SD-2, as
# `exclusive.kept_from`) are left out unless the student ($3) is one of them (no student: left
# out), and so are those the dino-home window keeps (SD-3, as `dino_home.kept_from`).
AVAILABILITY_JSON = """
SELECT coalesce(json_agg(json_build_object(
           'id', t.id, 'teacher_id', t.teacher_id, 'start_at', {start_at},
           'state', t.state, 'direction', t.direction, 'direction_target', t.direction_target,
           'expires_at', {expires_at}) ORDER BY t.start_at, t.teacher_id), '[]')::text
FROM (
    SELECT * FROM timeslots AS t
    WHERE t.state = 'open' AND t.start_at >= greatest($1::timestamptz, $4::timestamptz)
      AND t.start_at < $2
      AND (t.direction = 'general'
           OR (t.direction = 'student' AND t.direction_target = $3::bigint::text
               AND (t.expires_at IS NULL OR t.expires_at > $4))
           OR (t.direction = 'product' AND t.direction_target = $13::text))
      AND ($5::bigint IS NULL OR t.teacher_id = $5)
      AND ($6::text IS NULL OR EXISTS (
          SELECT 1 FROM teachers AS te WHERE te.id = t.teacher_id AND $6 = ANY(te.course_types)))
      AND NOT ($8::boolean
          AND timezone($9, date_trunc('week', timezone($9, t.start_at))
                           - interval '7 days' + $10::interval) > $4
          AND EXISTS (SELECT 1 FROM students AS e WHERE e.exclusive_teacher_id = t.teacher_id)
          AND t.teacher_id IS DISTINCT FROM (
              SELECT s.exclusive_teacher_id FROM students AS s WHERE s.id = $3::bigint))
      AND NOT ($8::boolean AND {dino_kept})
    ORDER BY t.start_at, t.teacher_id
    LIMIT $7
) AS t
""".format(
    start_at="""to_char(t.start_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')""",
    expires_at="""to_char(t.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')""",
    dino_kept=dino_home.kept_sql("t", "$3", "$4::timestamptz", "$9", "$11", "$12"),
)


async def availability_json(
    db: Sessions,
    *,
    start_from: datetime,
    start_to: datetime,
    teacher_id: int | None,
    course_type: CourseType | None,
    for_student: int | None,
    now: datetime,
    limit: int,
    hide_kept: bool = False,
    rules: BookingRules | None = None,
    product: Product | None = None,
) -> str:
    """Open slots a student could book, as a JSON array of the route's TimeslotOut; with
    `hide_kept`, not those the exclusive-teacher window (SD-2) or the dino-home window (SD-3)
    keeps from `for_student`; with `product`, also those directed at it (INT-1)."""
    answer: str = await fetch_at_once(
        db,
        "fetchval",
        AVAILABILITY_JSON,
        *availability_arguments(
            start_from=start_from,
            start_to=start_to,
            teacher_id=teacher_id,
            course_type=course_type,
            for_student=for_student,
            now=now,
            limit=limit,
            hide_kept=hide_kept,
            rules=rules or BookingRules(),
            product=product,
        ),
    )
    return answer


def availability_arguments(
    *,
    start_from: datetime,
    start_to: datetime,
    teacher_id: int | None,
    course_type: CourseType | None,
    for_student: int | None,
    now: datetime,
    limit: int,
    hide_kept: bool,
    rules: BookingRules,
    product: Product | None,
) -> tuple[Any, ...]:
    """AVAILABILITY_JSON's parameters, in order (also for the benchmark's floor)."""
    until = rules.exclusive_priority_until
    return (
        start_from,
        start_to,
        for_student,
        now,
        teacher_id,
        course_type.value if course_type is not None else None,
        limit,
        hide_kept,
        rules.business_time_zone,
        timedelta(hours=until.hour, minutes=until.minute, seconds=until.second),
        *dino_home.window(rules),
        product.value if product is not None else None,
    )


async def get_timeslot(session: AsyncSession, timeslot_id: int) -> Timeslot:
    return await get_or_404(session, Timeslot, "timeslot", timeslot_id)


async def slots_of_origin(session: AsyncSession, origin: str) -> list[Timeslot]:
    rows = await session.scalars(
        select(Timeslot).where(Timeslot.origin == origin).order_by(Timeslot.start_at)
    )
    return list(rows)


async def open_week_pattern(
    session: AsyncSession,
    *,
    teacher_id: int,
    first_week: date,
    weeks: int,
    times: list[PatternTime],
    time_zone: str | None,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> tuple[str, list[Timeslot], list[tuple[LocalStart, str]]]:
    """TCH-1 by week pattern: the pattern's starts in the teacher's time zone (or `time_zone`)
    opened as UTC slots. The zone used, the slots opened, and each start skipped with why:
    `no_such_local_time` (skipped by a change to summer time), `in_past`,
    `outside_booking_window` (past the teacher's 8 weeks ahead), `already_open`. A start off
    the :00/:30 UTC grid (a zone with a :45 offset) refuses the whole call (`422 off_grid`)."""
    teacher = await get_teacher(session, teacher_id)
    zone = time_zone or teacher.time_zone
    starts = local_starts(first_week, weeks, times, zone)
    skipped: list[tuple[LocalStart, str]] = []
    wanted: dict[datetime, LocalStart] = {}
    for start in starts:
        if start.start_at is None:
            skipped.append((start, "no_such_local_time"))
            continue
        check_on_grid(start.start_at)
        if start.start_at <= now:
            skipped.append((start, InPast.code))
        elif start.start_at > now + rules.teacher_open_ahead:
            skipped.append((start, OutsideWindow.code))
        else:
            wanted[start.start_at] = start
    opened: list[Timeslot] = []
    if wanted:
        opened, live = await open_timeslots(
            session, teacher_id=teacher_id, starts=list(wanted), actor=actor, now=now, rules=rules
        )
        skipped += [(wanted[at], "already_open") for at in live]
    skipped.sort(key=lambda s: s[0].local.astimezone(UTC))
    return zone, opened, skipped
