"""Over-booking (超约): book with no teacher, match on classroom entry, swap in class, and
reserve teachers ahead of demand (SD-5 a–d, CLS-2, TMK-1, CC-1, H5-9, H5-10, FM-7).

Who gets a teacher is decided by PostgreSQL alone (ARCHITECTURE rule 1):
- a match takes one open slot at the class's start, a pool slot of its course type first, else
  a general slot of a teacher who teaches it, with `FOR UPDATE SKIP LOCKED`: concurrent matches
  never wait on each other and never take the same slot; the partial unique index on live
  classes per timeslot backs that up;
- every step on one class first locks its `overbooked_classes` row (and the class), so the
  student's entries, the flow's retries, its give-up and its close are serialized per class;
- the teacher reservation is set-based SQL under a transaction-level advisory lock, so two runs
  at once serialize and the second finds nothing left to do; it skips slots a booking or a match
  holds at that moment.
"""

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor
from domain.errors import ClassNotCancellable, NotFound, TrialAlreadyBooked
from domain.overbooking import (
    SLOT,
    TEACHER_LABELS,
    MatchSource,
    NotATeacherLabel,
    NoTeacherFree,
    NoTeacherToSwap,
    NotOverbooked,
    OverbookingRules,
    OverbookKind,
    OverbookState,
    OverbookView,
    ReservationOutcome,
    check_can_overbook,
    check_classroom_open,
    check_in_progress,
    instant_start,
)
from domain.payment import Payment
from domain.rules import BookingRules, check_on_grid, check_student_takes
from domain.words import Asset, ClassLabel, ClassState, CourseType, TimeslotState
from store import audit, classes, ledger, people
from store.db import get_or_404
from store.models import Class, OverbookedClass, TeacherSwap, Timeslot

RESERVATION_ORIGIN = "teacher-reservation"
# pg_advisory_xact_lock key of the teacher reservation (any constant bigint, ours alone).
RESERVATION_LOCK = 5_052_026_0001


def flow_id(class_id: int) -> str:
    return f"overbook-{class_id}"


# --- booking (TMK-1, CC-1, SD-5a, H5-9, H5-10) --------------------------------------------------


async def book(
    session: AsyncSession,
    *,
    student_id: int,
    start_at: datetime,
    course_type: CourseType,
    payment: Payment,
    kind: OverbookKind,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> OverbookView:
    """A class at start_at with no teacher, paid at once; its flow is started by the caller."""
    student = await people.get_student(session, student_id)
    check_student_takes(student.id, student.level, course_type)
    check_on_grid(start_at)
    if kind is not OverbookKind.instant:
        check_can_overbook(start_at, now, rules.overbooking)
    charge = await ledger.charge_for(session, student_id, course_type, payment, now, rules)
    booked = await classes.paid_class(
        session,
        student_id=student_id,
        teacher_id=None,
        timeslot_id=None,
        start_at=start_at,
        course_type=course_type,
        charge=charge,
        lesson=None,
        actor=actor,
        now=now,
    )
    session.add(
        OverbookedClass(
            class_id=booked.id,
            student_id=student_id,
            kind=kind,
            course_type=course_type,
            start_at=start_at,
            state=OverbookState.booked,
            wait_until=start_at + rules.overbooking.wait_for_teacher,
            created_at=now,
            updated_at=now,
        )
    )
    await session.flush()
    await audit.record(
        session,
        "class",
        [booked.id],
        "booked",
        actor,
        now,
        overbooked=kind.value,
        payment=charge.asset.value,
        amount=charge.amount,
    )
    return await view(session, booked.id)


async def book_instant(
    session: AsyncSession,
    *,
    student_id: int,
    course_type: CourseType,
    payment: Payment,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> OverbookView:
    """H5-9: the next half hour, with any free teacher, matched in the same transaction."""
    start_at = instant_start(now, rules.overbooking)
    booked = await book(
        session,
        student_id=student_id,
        start_at=start_at,
        course_type=course_type,
        payment=payment,
        kind=OverbookKind.instant,
        actor=actor,
        now=now,
        rules=rules,
    )
    slot = await take_teacher_slot(session, start_at, course_type, now)
    if slot is None:
        raise NoTeacherFree(
            "no teacher is free for an instant class now",
            start_at=start_at.isoformat(),
            course_type=course_type.value,
        )
    await _assign(session, booked.class_id, slot, None, actor, now)
    return await view(session, booked.class_id)


async def register_and_book_trial(
    session: AsyncSession,
    *,
    parent_account: str,
    name: str,
    level: int,
    time_zone: str,
    start_at: datetime,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> OverbookView:
    """H5-10 (真约): the student of the parent's account in the calling channel, their trial
    credit and their over-booked trial, at once.

    The first call for an account registers its student and grants the trial credit (once:
    PostgreSQL keeps one student per channel and account, and one trial grant per student).
    A later call finds that student and grants nothing: refused with trial_already_booked if
    they have a trial class that is not cancelled, else their trial is booked with the credit
    a cancellation gave back (or refused with insufficient_balance)."""
    registered, new = await people.register_for_account(
        session,
        channel=actor.channel.value,
        account_id=parent_account,
        name=name,
        level=level,
        time_zone=time_zone,
        now=now,
    )
    if new:
        trial = ledger.Charge(Asset.credit, CourseType.trial.value, 1)
        await ledger.deposit(session, registered.id, trial, "trial_grant", actor, now)
    else:
        booked = await session.scalar(
            select(Class.id)
            .where(
                Class.student_id == registered.id,
                Class.course_type == CourseType.trial,
                Class.state != ClassState.cancelled,
            )
            .order_by(Class.id)
            .limit(1)
        )
        if booked is not None:
            raise TrialAlreadyBooked(
                "this parent account's student already has a trial class",
                student_id=registered.id,
                class_id=booked,
                parent_account=parent_account,
            )
    return await book(
        session,
        student_id=registered.id,
        start_at=start_at,
        course_type=CourseType.trial,
        payment=Payment(),
        kind=OverbookKind.real_booking,
        actor=actor,
        now=now,
        rules=rules,
    )


# --- reading ------------------------------------------------------------------------------------

_VIEW = """
SELECT o.class_id, c.student_id, o.kind, o.course_type, o.start_at, o.state,
       c.state AS class_state, c.label, c.teacher_id, c.timeslot_id, o.matched_from,
       o.entered_at, o.matched_at, o.wait_until, c.refunded
FROM overbooked_classes AS o JOIN classes AS c ON c.id = o.class_id
WHERE o.class_id = :class_id
"""
_VIEW_SQL = text(_VIEW)
# Serializes everything done to one over-booked class; rows read after the lock are current.
_LOCK_SQL = text(_VIEW + " FOR UPDATE OF o, c")


async def _row(session: AsyncSession, class_id: int, *, lock: bool) -> dict[str, Any]:
    found = (
        (await session.execute(_LOCK_SQL if lock else _VIEW_SQL, {"class_id": class_id}))
        .mappings()
        .first()
    )
    if found is None:
        if await session.get(Class, class_id) is None:
            raise NotFound("class", class_id)
        raise NotOverbooked("the class was not over-booked", class_id=class_id)
    return dict(found)


async def view(session: AsyncSession, class_id: int) -> OverbookView:
    return OverbookView.model_validate(await _row(session, class_id, lock=False))


async def is_overbooked(session: AsyncSession, class_id: int) -> bool:
    """Whether the class was booked with no teacher, so that a flow follows it."""
    found = await session.scalar(
        select(OverbookedClass.class_id).where(OverbookedClass.class_id == class_id)
    )
    return found is not None


# --- the match (CLS-2, SD-5c) -------------------------------------------------------------------

# One open slot at the start for the course type: a pool slot first, else a general slot of a
# teacher who teaches it. SKIP LOCKED: a slot another match is taking is passed over, not waited
# for; one whose taker has committed no longer satisfies state = 'open' on re-check.
_TAKE_SQL = text(
    """
WITH pool AS (
    SELECT id, teacher_id FROM timeslots
    WHERE start_at = :start_at AND state = 'open' AND direction = 'overbook_pool'
      AND direction_target = :course_type
    LIMIT 1 FOR UPDATE SKIP LOCKED
), general AS (
    SELECT s.id, s.teacher_id FROM timeslots AS s JOIN teachers AS t ON t.id = s.teacher_id
    WHERE s.start_at = :start_at AND s.state = 'open' AND s.direction = 'general'
      AND :course_type = ANY(t.course_types) AND NOT EXISTS (SELECT 1 FROM pool)
    LIMIT 1 FOR UPDATE OF s SKIP LOCKED
), pick AS (
    SELECT id, teacher_id, 'overbook_pool' AS source FROM pool
    UNION ALL
    SELECT id, teacher_id, 'general' AS source FROM general
)
UPDATE timeslots AS s SET state = 'booked', updated_at = :now
FROM pick WHERE s.id = pick.id
RETURNING s.id, s.teacher_id, pick.source
"""
)

_ASSIGN_SQL = text(
    """
WITH cls AS (
    UPDATE classes SET teacher_id = :teacher_id, timeslot_id = :timeslot_id, updated_at = :now
    WHERE id = :class_id RETURNING id
), ob AS (
    UPDATE overbooked_classes
    SET state = 'matched', matched_at = :now, matched_from = :source,
        entered_at = coalesce(entered_at, :entered_at), updated_at = :now
    WHERE class_id = :class_id RETURNING class_id
)
"""
    + audit.INSERT_CONCERNING
    + """
SELECT 'timeslot', CAST(:timeslot_id AS bigint), 'booked', :channel, :actor_id, :now,
       CAST(:slot_details AS jsonb), c.student_id, ARRAY[CAST(:teacher_id AS bigint)]
FROM classes AS c WHERE c.id = :class_id
UNION ALL
SELECT 'class', CAST(:class_id AS bigint), 'teacher_matched', :channel, :actor_id, :now,
       CAST(:class_details AS jsonb), c.student_id, ARRAY[CAST(:teacher_id AS bigint)]
FROM classes AS c WHERE c.id = :class_id
"""
)


class Taken:
    def __init__(self, timeslot_id: int, teacher_id: int, source: str) -> None:
        self.timeslot_id, self.teacher_id = timeslot_id, teacher_id
        self.source = MatchSource(source)


async def take_teacher_slot(
    session: AsyncSession, start_at: datetime, course_type: CourseType, now: datetime
) -> Taken | None:
    """Book one free teacher's slot at start_at for this course type, or None."""
    row = (
        await session.execute(
            _TAKE_SQL, {"start_at": start_at, "course_type": course_type.value, "now": now}
        )
    ).first()
    return None if row is None else Taken(row[0], row[1], row[2])


async def _assign(
    session: AsyncSession,
    class_id: int,
    slot: Taken,
    entered_at: datetime | None,
    actor: Actor,
    now: datetime,
) -> None:
    await session.execute(
        _ASSIGN_SQL,
        {
            "class_id": class_id,
            "teacher_id": slot.teacher_id,
            "timeslot_id": slot.timeslot_id,
            "source": slot.source.value,
            "entered_at": entered_at,
            "now": now,
            "channel": actor.channel.value,
            "actor_id": actor.id,
            "slot_details": json.dumps({"class_id": class_id, "overbooked": True}),
            "class_details": json.dumps(
                {
                    "teacher_id": slot.teacher_id,
                    "timeslot_id": slot.timeslot_id,
                    "from": slot.source.value,
                }
            ),
        },
    )


def _matched(row: dict[str, Any], slot: Taken, now: datetime) -> OverbookView:
    return OverbookView.model_validate(
        {
            **row,
            "state": OverbookState.matched,
            "teacher_id": slot.teacher_id,
            "timeslot_id": slot.timeslot_id,
            "matched_from": slot.source,
            "matched_at": now,
            "entered_at": row["entered_at"] or now,
        }
    )


async def enter(
    session: AsyncSession, *, class_id: int, actor: Actor, now: datetime, rules: BookingRules
) -> OverbookView:
    """CLS-2: the student entered the classroom. Answers with the teacher: the one already
    matched, or one matched now; else the student waits (state `waiting`) while the flow
    retries, and after the wait has ended the class fails at once with a full refund."""
    row = await _row(session, class_id, lock=True)
    if row["class_state"] != ClassState.booked.value or row["state"] in (
        OverbookState.failed.value,
        OverbookState.finished.value,
    ):
        return OverbookView.model_validate(row)
    check_classroom_open(row["start_at"], now, rules.overbooking)
    if row["teacher_id"] is not None:
        if row["entered_at"] is None:
            await session.execute(
                update(OverbookedClass)
                .where(OverbookedClass.class_id == class_id)
                .values(entered_at=now, updated_at=now)
            )
            row["entered_at"] = now
        return OverbookView.model_validate(row)
    slot = await take_teacher_slot(session, row["start_at"], CourseType(row["course_type"]), now)
    if slot is not None:
        await _assign(session, class_id, slot, now, actor, now)
        return _matched(row, slot, now)
    await session.execute(
        update(OverbookedClass)
        .where(OverbookedClass.class_id == class_id)
        .values(
            state=OverbookState.waiting,
            entered_at=row["entered_at"] or now,
            updated_at=now,
        )
    )
    if now >= row["wait_until"]:
        await _fail(session, class_id, actor, now)
    return await view(session, class_id)


async def retry_match(
    session: AsyncSession, *, class_id: int, actor: Actor, now: datetime
) -> OverbookView:
    """The flow's retry for a waiting student; for anyone else it only reads the class."""
    row = await _row(session, class_id, lock=True)
    if (
        row["class_state"] == ClassState.booked.value
        and row["state"] == OverbookState.waiting.value
        and row["teacher_id"] is None
    ):
        slot = await take_teacher_slot(
            session, row["start_at"], CourseType(row["course_type"]), now
        )
        if slot is not None:
            await _assign(session, class_id, slot, None, actor, now)
            return _matched(row, slot, now)
    return OverbookView.model_validate(row)


async def give_up(
    session: AsyncSession, *, class_id: int, actor: Actor, now: datetime
) -> OverbookView:
    """The wait is over and the student still has no teacher: fail, refund in full."""
    row = await _row(session, class_id, lock=True)
    if (
        row["class_state"] == ClassState.booked.value
        and row["teacher_id"] is None
        and row["state"] == OverbookState.waiting.value
    ):
        await _fail(session, class_id, actor, now)
    return await view(session, class_id)


async def undo_booking(
    session: AsyncSession, *, class_id: int, actor: Actor, now: datetime
) -> None:
    """The class's flow could not be started once its booking had committed: take the booking
    back (the class cancelled and refunded in full, a matched teacher's slot open again), so
    that the 503 its caller gets means that nothing happened."""
    row = await _row(session, class_id, lock=True)
    if row["class_state"] != ClassState.booked.value:
        return
    if row["timeslot_id"] is not None:
        await session.execute(
            update(Timeslot)
            .where(Timeslot.id == row["timeslot_id"], Timeslot.state == TimeslotState.booked)
            .values(state=TimeslotState.open, updated_at=now)
        )
    await _fail(session, class_id, actor, now, reason="flow_not_started")


async def _fail(
    session: AsyncSession,
    class_id: int,
    actor: Actor,
    now: datetime,
    *,
    reason: str = "no_teacher",
) -> None:
    cancelled = await session.scalar(
        update(Class)
        .where(Class.id == class_id, Class.state == ClassState.booked)
        .values(state=ClassState.cancelled, refunded=True, updated_at=now)
        .returning(Class)
    )
    assert cancelled is not None  # the caller holds the class's lock and saw it booked
    await ledger.deposit(
        session,
        cancelled.student_id,
        ledger.charge_of(cancelled),
        "refund",
        actor,
        now,
        class_id=class_id,
    )
    await session.execute(
        update(OverbookedClass)
        .where(OverbookedClass.class_id == class_id)
        .values(state=OverbookState.failed, updated_at=now)
    )
    await audit.record(
        session, "class", [class_id], "cancelled", actor, now, refunded=True, reason=reason
    )


async def close(
    session: AsyncSession, *, class_id: int, actor: Actor, now: datetime
) -> OverbookView:
    """The end of the half hour: a class with a teacher and an entered student is finished
    as_scheduled; one whose student never entered, student_no_show (paid, not refunded); a
    student still waiting gets the refund."""
    row = await _row(session, class_id, lock=True)
    if row["class_state"] != ClassState.booked.value:
        return OverbookView.model_validate(row)
    if row["entered_at"] is not None and row["teacher_id"] is None:
        await _fail(session, class_id, actor, now)
        return await view(session, class_id)
    label = ClassLabel.as_scheduled if row["entered_at"] else ClassLabel.student_no_show
    await session.execute(
        update(Class)
        .where(Class.id == class_id)
        .values(state=ClassState.finished, label=label, updated_at=now)
    )
    await session.execute(
        update(OverbookedClass)
        .where(OverbookedClass.class_id == class_id)
        .values(state=OverbookState.finished, updated_at=now)
    )
    await audit.record(session, "class", [class_id], "finished", actor, now, label=label.value)
    return await view(session, class_id)


# --- in-class teacher swap (SD-5d, FM-7) --------------------------------------------------------


async def swap_teacher(
    session: AsyncSession,
    *,
    class_id: int,
    label: ClassLabel,
    reason: str | None,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> TeacherSwap:
    """Another free teacher (pool, else open general at the start) takes over the class; the
    old teacher's slot is removed and their outcome labelled; audited on class and slots."""
    if label not in TEACHER_LABELS:
        raise NotATeacherLabel(
            "the old teacher's outcome is a teacher label",
            label=label.value,
            allowed=sorted(x.value for x in TEACHER_LABELS),
        )
    cls = await get_or_404(session, Class, "class", class_id, lock=True)
    if cls.state is not ClassState.booked:
        raise ClassNotCancellable(
            "the class is not booked", class_id=class_id, state=cls.state.value
        )
    if cls.teacher_id is None or cls.timeslot_id is None:
        raise NoTeacherToSwap("the class has no teacher yet", class_id=class_id)
    check_in_progress(cls.start_at, now, rules.overbooking)
    slot = await take_teacher_slot(session, cls.start_at, cls.course_type, now)
    if slot is None:
        raise NoTeacherFree(
            "no other teacher is free at the class's time",
            start_at=cls.start_at.isoformat(),
            course_type=cls.course_type.value,
        )
    old_teacher, old_slot = cls.teacher_id, cls.timeslot_id
    await session.execute(
        text("UPDATE timeslots SET state = 'removed', updated_at = :now WHERE id = :id"),
        {"id": old_slot, "now": now},
    )
    cls.teacher_id, cls.timeslot_id, cls.updated_at = slot.teacher_id, slot.timeslot_id, now
    swap = TeacherSwap(
        class_id=class_id,
        old_teacher_id=old_teacher,
        old_timeslot_id=old_slot,
        new_teacher_id=slot.teacher_id,
        new_timeslot_id=slot.timeslot_id,
        new_from=slot.source,
        old_teacher_label=label,
        reason=reason,
        channel=actor.channel.value,
        actor_id=actor.id,
        occurred_at=now,
    )
    session.add(swap)
    await session.flush()
    details = {"old_teacher_id": old_teacher, "new_teacher_id": slot.teacher_id}
    await audit.record(
        session,
        "class",
        [class_id],
        "teacher_swapped",
        actor,
        now,
        **details,
        old_timeslot_id=old_slot,
        new_timeslot_id=slot.timeslot_id,
        new_from=slot.source.value,
        old_teacher_label=label.value,
        reason=reason,
    )
    await audit.record(
        session, "timeslot", [old_slot], "removed", actor, now, class_id=class_id, label=label.value
    )
    await audit.record(
        session, "timeslot", [slot.timeslot_id], "booked", actor, now, class_id=class_id, swap=True
    )
    return swap


async def swaps_of(session: AsyncSession, class_id: int) -> list[TeacherSwap]:
    rows = await session.scalars(
        select(TeacherSwap).where(TeacherSwap.class_id == class_id).order_by(TeacherSwap.id)
    )
    return list(rows)


# --- teacher reservation (SD-5b) ----------------------------------------------------------------

_RELEASE_PAST_SQL = text(
    """
WITH locked AS (
    SELECT id FROM timeslots
    WHERE state = 'open' AND direction = 'overbook_pool' AND start_at <= :ended_before
    FOR UPDATE SKIP LOCKED
), released AS (
    UPDATE timeslots AS s
    SET direction = 'general', direction_target = NULL, updated_at = :now
    FROM locked WHERE s.id = locked.id
    RETURNING s.id
), audited AS (
    """
    + audit.INSERT
    + """
    SELECT 'timeslot', id, 'released', 'supply_demand', :origin, :now, '{"past": true}'::jsonb
    FROM released
)
SELECT count(*) FROM released
"""
)

_DEMAND = """
demand AS (
    SELECT o.start_at, o.course_type, count(*) AS unmatched,
           ceil(count(*) * CAST(:factor AS numeric))::int AS target
    FROM overbooked_classes AS o JOIN classes AS c ON c.id = o.class_id
    WHERE o.start_at > :now AND o.start_at <= :until
      AND c.state = 'booked' AND c.teacher_id IS NULL
    GROUP BY o.start_at, o.course_type
)
"""

# Pool slots beyond the target of their half hour and course type go back to general
# inventory, the most recently reserved first.
_RELEASE_EXCESS_SQL = text(
    "WITH "
    + _DEMAND
    + """
, locked AS (
    SELECT id, start_at, direction_target FROM timeslots
    WHERE state = 'open' AND direction = 'overbook_pool'
      AND start_at > :now AND start_at <= :until
    FOR UPDATE SKIP LOCKED
), ranked AS (
    SELECT l.id, coalesce(d.target, 0) AS target,
           count(*) OVER (PARTITION BY l.start_at, l.direction_target) AS held,
           row_number() OVER (PARTITION BY l.start_at, l.direction_target ORDER BY l.id DESC)
               AS rank
    FROM locked AS l
    LEFT JOIN demand AS d ON d.start_at = l.start_at AND d.course_type = l.direction_target
), released AS (
    UPDATE timeslots AS s
    SET direction = 'general', direction_target = NULL, updated_at = :now
    FROM ranked AS r WHERE s.id = r.id AND r.rank <= r.held - r.target
    RETURNING s.id
), audited AS (
    """
    + audit.INSERT
    + """
    SELECT 'timeslot', id, 'released', 'supply_demand', :origin, :now, '{}'::jsonb
    FROM released
)
SELECT count(*) FROM released
"""
)

# For each half hour with demand of this course type, take the missing pool slots from open
# general slots of teachers who teach it. The strategy: teachers who teach the fewest course
# types first (specialists), leaving versatile teachers to ordinary bookings of other course
# types; then the teachers with the fewest classes within 12 h of that start (spreading the
# load); then the lowest teacher id, so that the choice is deterministic.
_RESERVE_SQL = text(
    "WITH "
    + _DEMAND
    + """
, pool AS (
    SELECT start_at, count(*) AS held FROM timeslots
    WHERE state = 'open' AND direction = 'overbook_pool' AND direction_target = :course_type
      AND start_at > :now AND start_at <= :until
    GROUP BY start_at
), need AS (
    SELECT d.start_at, d.target - coalesce(p.held, 0) AS missing
    FROM demand AS d LEFT JOIN pool AS p ON p.start_at = d.start_at
    WHERE d.course_type = :course_type AND d.target > coalesce(p.held, 0)
), locked AS (
    SELECT s.id, s.start_at, s.teacher_id FROM timeslots AS s
    JOIN teachers AS t ON t.id = s.teacher_id
    WHERE s.state = 'open' AND s.direction = 'general'
      AND s.start_at IN (SELECT start_at FROM need) AND :course_type = ANY(t.course_types)
    FOR UPDATE OF s SKIP LOCKED
), ranked AS (
    SELECT l.id, l.start_at,
           row_number() OVER (
               PARTITION BY l.start_at
               ORDER BY cardinality(t.course_types),
                        (SELECT count(*) FROM classes AS c
                         WHERE c.teacher_id = l.teacher_id AND c.state <> 'cancelled'
                           AND c.start_at > l.start_at - interval '12 hours'
                           AND c.start_at < l.start_at + interval '12 hours'),
                        l.teacher_id
           ) AS rank
    FROM locked AS l JOIN teachers AS t ON t.id = l.teacher_id
), taken AS (
    UPDATE timeslots AS s
    SET direction = 'overbook_pool', direction_target = :course_type, origin = :origin,
        updated_at = :now
    FROM ranked AS r JOIN need AS n ON n.start_at = r.start_at
    WHERE s.id = r.id AND r.rank <= n.missing
    RETURNING s.id
), audited AS (
    """
    + audit.INSERT
    + """
    SELECT 'timeslot', id, 'reserved', 'supply_demand', :origin, :now,
           jsonb_build_object('course_type', CAST(:course_type AS text))
    FROM taken
)
SELECT (SELECT count(*) FROM taken), (SELECT coalesce(sum(missing), 0) FROM need)
"""
)

_DEMAND_TOTALS_SQL = text(
    "WITH "
    + _DEMAND
    + """
SELECT count(DISTINCT start_at), coalesce(sum(unmatched), 0), array_agg(DISTINCT course_type)
FROM demand
"""
)


async def reserve_teachers(
    session: AsyncSession, *, now: datetime, rules: OverbookingRules
) -> ReservationOutcome:
    """SD-5b, one transaction: release pool slots whose half hour is over, release pool slots
    beyond demand × factor, then take open general slots into the pool to cover it."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": RESERVATION_LOCK})
    window = {
        "now": now,
        "until": now + rules.reservation_horizon,
        "factor": str(rules.pool_factor),
        "origin": RESERVATION_ORIGIN,
    }
    released_past = await session.scalar(
        _RELEASE_PAST_SQL, {"ended_before": now - SLOT, "now": now, "origin": RESERVATION_ORIGIN}
    )
    released = await session.scalar(_RELEASE_EXCESS_SQL, window)
    half_hours, demand, course_types = (
        await session.execute(
            _DEMAND_TOTALS_SQL, {k: window[k] for k in ("now", "until", "factor")}
        )
    ).one()
    reserved = missing = 0
    for course_type in sorted(course_types or []):
        taken, wanted = (
            await session.execute(_RESERVE_SQL, {**window, "course_type": course_type})
        ).one()
        reserved, missing = reserved + taken, missing + wanted
    return ReservationOutcome(
        ran_at=now,
        half_hours_with_demand=half_hours,
        demand=demand,
        reserved=reserved,
        released=released or 0,
        released_past=released_past or 0,
        short=missing - reserved,
    )
