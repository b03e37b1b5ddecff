"""Classes: book an open slot and pay for it, cancel with the 24 h refund rule.

Each operation runs in the caller's transaction: the slot, the class, the ledger entry and the
audit rows commit together or not at all.
"""

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any

import asyncpg
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor
from domain.errors import (
    ClassNotCancellable,
    ClassStarted,
    MixedTeachers,
    StudentBusy,
)
from domain.payment import Payment
from domain.rules import (
    CHINESE_TEACHER_COURSE_TYPES,
    L7,
    BookingRules,
    check_one_on_one,
    check_student_can_book,
    check_student_takes,
    check_teaches,
    price,
    refund_due,
)
from domain.words import Asset, ClassState, CourseType, Direction, Product
from store import (
    audit,
    courses,
    dino_home,
    fake_cancels,
    holds,
    inventory,
    ledger,
    stone_campaigns,
)
from store.db import Sessions, fetch_at_once, get_or_404
from store.models import Class, Teacher, Timeslot
from store.people import get_student

# PAR-1, H5-1, H5-3, H5-4, LP-2 in one statement, one round trip, in its own implicit
# transaction: the slot taken (open; general, or held for this student and not expired, but not
# a teacher-cancel offer, whose hold `book_class` ends; or directed at the booking's product,
# $21, INT-1; never a slot a fake cancel holds for a channel, TMK-4/CC-4, which `book_class`
# books; 1 h - 4 weeks ahead; a special class only once the student's special course has
# started, H5-6; not kept for an exclusive teacher's students, SD-2, nor for dino-home
# students, SD-3), the course type taught (and by a Chinese teacher only the Chinese half of
# all-round advanced), the student's level (L7), the coupon, the debit under the balance guard
# (in stones the campaign price at $7, TCH-7, else the settings' price $6), the class, its
# ledger entry and both audit rows. Every condition is the one `book_class` checks step by
# step; when any fails nothing is written and `book_class` says which. If the slot was taken
# but the payment or the class was not (a race lost after the slot's UPDATE), the last line
# divides by zero, which rolls the whole statement back.
BOOK_AT_ONCE = (
    """
WITH student AS (
    SELECT s.id, s.exclusive_teacher_id FROM students AS s
    WHERE s.id = $1 AND ($3 <> 'l7_major' OR s.level = $17)
      AND """
    + courses.STARTED_SQL
    + """
), coupon AS (
    SELECT $4 <> 'coupon' OR EXISTS (
        SELECT 1 FROM coupons AS c
        WHERE c.id = $15 AND c.student_id = $1 AND c.course_type = $3 AND c.expires_at > $7
    ) AS valid
), slot AS (
    UPDATE timeslots AS t SET state = 'booked', updated_at = $7
    FROM student, coupon
    WHERE t.id = $2 AND t.state = 'open' AND coupon.valid
      AND (t.direction = 'general'
           OR (t.direction = 'student' AND t.direction_target = $1::text
               AND (t.expires_at IS NULL OR t.expires_at > $7)
               AND (t.origin IS NULL OR left(t.origin, length($18)) <> $18))
           OR (t.direction = 'product' AND t.direction_target = $21::text))
      AND t.start_at > $7 AND t.start_at BETWEEN $7 + $8 AND $7 + $9
      AND EXISTS (
          SELECT 1 FROM teachers AS te
          WHERE te.id = t.teacher_id AND $3 = ANY(te.course_types)
            AND (te.kind <> 'chinese' OR $3 = ANY($16::text[])))
      AND NOT (
          timezone($13, date_trunc('week', timezone($13, t.start_at))
                        - interval '7 days' + $14::interval) > $7
          AND EXISTS (SELECT 1 FROM students AS e WHERE e.exclusive_teacher_id = t.teacher_id)
          AND t.teacher_id IS DISTINCT FROM student.exclusive_teacher_id)
      AND NOT """
    + dino_home.kept_sql("t", "$1", "$7", "$13", "$19", "$20")
    + """
    RETURNING t.id, t.teacher_id, t.start_at
), price AS (
    SELECT CASE WHEN $4 = 'stones' THEN """
    + stone_campaigns.price_sql("$3", "$7", "$6::int")
    + """
           ELSE $6::int END AS amount
), paid AS (
    UPDATE accounts SET balance = balance - price.amount
    FROM price
    WHERE student_id = $1 AND asset = $4 AND key = $5 AND balance >= price.amount
      AND EXISTS (SELECT 1 FROM slot)
    RETURNING student_id, price.amount
), cls AS (
    INSERT INTO classes (student_id, teacher_id, timeslot_id, start_at, course_type, state,
                         lesson, payment_asset, payment_key, payment_amount, channel, actor_id,
                         created_at, updated_at)
    SELECT $1, slot.teacher_id, slot.id, slot.start_at, $3, 'booked', $12, $4, $5, paid.amount,
           $10, $11, $7, $7
    FROM slot, paid
    ON CONFLICT DO NOTHING
    RETURNING *
), entry AS (
    INSERT INTO ledger_entries (student_id, asset, key, delta, reason, class_id, channel,
                                actor_id, occurred_at)
    SELECT $1, $4, $5, -cls.payment_amount, 'booking', cls.id, $10, $11, $7 FROM cls
    RETURNING id
), audited AS (
    """
    + audit.INSERT_CONCERNING
    + """
    SELECT 'timeslot', cls.timeslot_id, 'booked', $10, $11, $7,
           jsonb_build_object('class_id', cls.id), cls.student_id, ARRAY[cls.teacher_id]
    FROM cls
    UNION ALL
    SELECT 'class', cls.id, 'booked', $10, $11, $7,
           jsonb_build_object('timeslot_id', cls.timeslot_id, 'payment', $4::text,
                              'amount', cls.payment_amount)
           || CASE WHEN $21::text IS NULL THEN '{}'::jsonb
                   ELSE jsonb_build_object('product', $21::text) END,
           cls.student_id, ARRAY[cls.teacher_id]
    FROM cls
)
SELECT cls.* FROM (SELECT 1) AS one LEFT JOIN cls ON true
WHERE CASE WHEN EXISTS (SELECT 1 FROM slot) THEN 1 / (SELECT count(*) FROM entry)::int = 1
           ELSE true END
"""
)


async def book_class_at_once(
    db: Sessions,
    *,
    student_id: int,
    timeslot_id: int,
    course_type: CourseType,
    payment: Payment,
    lesson: str | None,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
    product: Product | None = None,
) -> dict[str, Any] | None:
    """The class booked by BOOK_AT_ONCE, committed; None if any rule refused (nothing was
    written: `book_class` then books it, or says which rule refused). With a product (INT-1),
    a slot directed at that product may be taken too."""
    check_one_on_one(course_type)
    asset = payment.asset
    key = {
        Asset.credit: course_type.value,
        Asset.stones: ledger.STONES_KEY,
        Asset.coupon: str(payment.coupon_id),
    }[asset]
    try:
        row = await fetch_at_once(
            db,
            "fetchrow",
            BOOK_AT_ONCE,
            student_id,
            timeslot_id,
            course_type.value,
            asset.value,
            key,
            price(asset, course_type, rules),
            now,
            rules.student_book_min_lead,
            rules.student_book_ahead,
            actor.channel.value,
            actor.id,
            lesson,
            rules.business_time_zone,
            _since_midnight(rules.exclusive_priority_until),
            payment.coupon_id,
            sorted(c.value for c in CHINESE_TEACHER_COURSE_TYPES),
            L7,
            holds.FLOW,
            *dino_home.window(rules),
            product.value if product is not None else None,
        )
    except (asyncpg.DivisionByZeroError, asyncpg.DataError):
        # A race lost after the slot was taken, or a value PostgreSQL cannot hold:
        # `book_class` tells which.
        return None
    return dict(row) if row is not None and row["id"] is not None else None


def _since_midnight(at: time) -> timedelta:
    return timedelta(hours=at.hour, minutes=at.minute, seconds=at.second)


async def book_class(
    session: AsyncSession,
    *,
    student_id: int,
    timeslot_id: int,
    course_type: CourseType,
    payment: Payment,
    lesson: str | None,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
    product: Product | None = None,
) -> tuple[Class, str | None]:
    """PAR-1, H5-1, H5-3, H5-4, LP-2: book an open slot, paid at once (in stones, at the
    campaign price of `now`, TCH-7). A booking for a product (INT-1) may take a slot directed
    at that product too; any other booking is refused such a slot (`slot_for_product`).

    Booking one of the slots a teacher offered after cancelling (TCH-5) ends that hold: the
    other offered slots are removed in the same transaction, and the hold's flow id comes back
    with the class, for the caller to tell the flow once committed. So does the booking of a
    slot a fake cancel holds for the caller's channel (TMK-4, CC-4; BOOK_AT_ONCE never takes
    one).
    """
    student = await get_student(session, student_id)
    check_student_takes(student.id, student.level, course_type)
    await courses.check_started(session, student_id, course_type)
    slot = await inventory.take_slot(
        session,
        timeslot_id,
        student_id=student_id,
        now=now,
        rules=rules,
        channel=actor.channel,
        product=product,
    )
    check_student_can_book(slot.start_at, now, rules)
    charge = await ledger.charge_for(session, student_id, course_type, payment, now, rules)
    booked = await new_class(
        session,
        student_id=student_id,
        slot=slot,
        course_type=course_type,
        charge=charge,
        lesson=lesson,
        actor=actor,
        now=now,
        product=product,
    )
    if holds.is_offered(slot):
        await holds.held_slot_booked(session, slot, booked, actor, now)
        return booked, slot.origin
    if fake_cancels.is_held(slot):
        return booked, await fake_cancels.held_slot_taken(session, slot, booked, actor, now)
    return booked, None


async def new_class(
    session: AsyncSession,
    *,
    student_id: int,
    slot: Timeslot,
    course_type: CourseType,
    charge: ledger.Charge,
    lesson: str | None,
    actor: Actor,
    now: datetime,
    product: Product | None = None,
) -> Class:
    """The class on a slot this transaction has taken, paid with the charge; the product it
    was booked for (INT-1), if any, is in its audit row."""
    teacher = await session.get_one(Teacher, slot.teacher_id)
    check_teaches(
        teacher.id,
        teacher.kind,
        teacher.course_types,
        course_type,
        contract=slot.direction is Direction.contract,
    )
    booked = await paid_class(
        session,
        student_id=student_id,
        teacher_id=slot.teacher_id,
        timeslot_id=slot.id,
        start_at=slot.start_at,
        course_type=course_type,
        charge=charge,
        lesson=lesson,
        actor=actor,
        now=now,
    )
    await audit.record(session, "timeslot", [slot.id], "booked", actor, now, class_id=booked.id)
    await audit.record(
        session,
        "class",
        [booked.id],
        "booked",
        actor,
        now,
        timeslot_id=slot.id,
        payment=charge.asset.value,
        amount=charge.amount,
        **({"product": product.value} if product is not None else {}),
    )
    return booked


async def paid_class(
    session: AsyncSession,
    *,
    student_id: int,
    teacher_id: int | None,
    timeslot_id: int | None,
    start_at: datetime,
    course_type: CourseType,
    charge: ledger.Charge,
    lesson: str | None,
    actor: Actor,
    now: datetime,
    open_class_id: int | None = None,
) -> Class:
    """Insert the class and debit its payment; StudentBusy if the student has a class then.

    With no teacher and no timeslot it is an over-booked class, matched later (SD-5); with an
    open class and no timeslot, a seat in that open class (PAR-2, H5-2).
    """
    booked: Class | None = await session.scalar(
        insert(Class)
        .values(
            student_id=student_id,
            teacher_id=teacher_id,
            timeslot_id=timeslot_id,
            start_at=start_at,
            course_type=course_type,
            state=ClassState.booked,
            lesson=lesson,
            payment_asset=charge.asset,
            payment_key=charge.key,
            payment_amount=charge.amount,
            open_class_id=open_class_id,
            channel=actor.channel.value,
            actor_id=actor.id,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
        .returning(Class)
    )
    if booked is None:
        raise StudentBusy(
            "the student already has a class at that time",
            student_id=student_id,
            start_at=start_at.isoformat(),
        )
    await ledger.withdraw(session, student_id, charge, "booking", actor, now, class_id=booked.id)
    return booked


async def book_classes(
    session: AsyncSession,
    *,
    student_id: int,
    timeslot_ids: Sequence[int],
    course_type: CourseType,
    payment: Payment,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> list[Class]:
    """LP-8: several slots with one teacher, all booked or none.

    Slots are taken in id order, so overlapping batches wait for each other, never deadlock.
    """
    booked = [
        (
            await book_class(
                session,
                student_id=student_id,
                timeslot_id=timeslot_id,
                course_type=course_type,
                payment=payment,
                lesson=None,
                actor=actor,
                now=now,
                rules=rules,
            )
        )[0]
        for timeslot_id in sorted(timeslot_ids)
    ]
    if len({c.teacher_id for c in booked}) > 1:
        raise MixedTeachers(
            "all timeslots of one batch belong to one teacher",
            teacher_ids=sorted({c.teacher_id for c in booked if c.teacher_id is not None}),
        )
    return booked


# PAR-3, H5-5, LP-3, FM-2 in one statement, one round trip: the class cancelled if booked and
# not started (and, for a parent, their own student's), refunded at least the cutoff (24 h)
# ahead, its slot given back as `inventory.give_back` does (a held or offered slot becomes
# general inventory; a request's slot stays only if the teacher kept it and the cancel is
# early), and the audit rows. No row: nothing was written, and `cancel_class` says why.
CANCEL_AT_ONCE = (
    """
WITH cls AS (
    UPDATE classes SET state = 'cancelled', updated_at = $2, refunded = start_at - $2 >= $3
    WHERE id = $1 AND state = 'booked' AND start_at > $2
      AND ($4::bigint IS NULL OR student_id = $4)
    RETURNING *
), account AS (
    INSERT INTO accounts (student_id, asset, key, balance)
    SELECT student_id, payment_asset, payment_key, payment_amount FROM cls WHERE refunded
    ON CONFLICT (student_id, asset, key)
    DO UPDATE SET balance = accounts.balance + excluded.balance
), entry AS (
    INSERT INTO ledger_entries (student_id, asset, key, delta, reason, class_id, channel,
                                actor_id, occurred_at)
    SELECT student_id, payment_asset, payment_key, payment_amount, 'refund', id, $5, $6, $2
    FROM cls WHERE refunded
), slot AS (
    UPDATE timeslots AS t
    SET updated_at = $2,
        state = CASE
            WHEN t.direction <> 'request' THEN 'open'
            WHEN cls.refunded AND coalesce(
                (SELECT r.keep_slot FROM class_requests AS r
                 WHERE r.id = CAST(t.direction_target AS bigint)), false) THEN 'open'
            ELSE 'removed' END,
        direction = CASE WHEN t.direction IN ('student', 'request', 'channel') THEN 'general'
                         ELSE t.direction END,
        direction_target = CASE WHEN t.direction IN ('student', 'request', 'channel') THEN NULL
                                ELSE t.direction_target END,
        expires_at = CASE WHEN t.direction IN ('student', 'channel') THEN NULL
                          ELSE t.expires_at END
    FROM cls WHERE t.id = cls.timeslot_id
    RETURNING t.id
), audited AS (
    """
    + audit.INSERT_CONCERNING
    + """
    SELECT 'timeslot', slot.id, 'freed', $5, $6, $2, jsonb_build_object('class_id', $1::bigint),
           cls.student_id, ARRAY[cls.teacher_id]
    FROM slot, cls
    UNION ALL
    SELECT 'class', cls.id, 'cancelled', $5, $6, $2,
           jsonb_build_object('refunded', cls.refunded, 'reason', $7::text, 'by_teacher', false),
           cls.student_id, ARRAY[cls.teacher_id]
    FROM cls
)
SELECT * FROM cls
"""
)


async def cancel_class_at_once(
    db: Sessions,
    *,
    class_id: int,
    owner: int | None,
    reason: str | None,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> dict[str, Any] | None:
    """The class cancelled by CANCEL_AT_ONCE, committed; None if it was not (nothing was
    written: `cancel_class` then says why). `owner`: the only student whose class this caller
    may cancel (a parent's), or None for staff."""
    try:
        row = await fetch_at_once(
            db,
            "fetchrow",
            CANCEL_AT_ONCE,
            class_id,
            now,
            rules.refund_cutoff,
            owner,
            actor.channel.value,
            actor.id,
            reason,
        )
    except asyncpg.DataError:
        return None
    return dict(row) if row is not None else None


async def cancel_class(
    session: AsyncSession,
    *,
    class_id: int,
    reason: str | None,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
    by_teacher: bool = False,
) -> Class:
    """PAR-3, H5-5, LP-3, FM-2: cancel before the start; refund if at least 24 h ahead.

    by_teacher (TCH-5): the student is refunded in full whenever it happens, and the slot is
    removed, since the teacher cannot teach then.
    """
    cancelled: Class | None = await session.scalar(
        update(Class)
        .where(Class.id == class_id, Class.state == ClassState.booked, Class.start_at > now)
        .values(state=ClassState.cancelled, updated_at=now)
        .returning(Class)
    )
    if cancelled is None:
        existing = await get_class(session, class_id)
        if existing.state is not ClassState.booked:
            raise ClassNotCancellable(
                "the class is not booked", class_id=class_id, state=existing.state.value
            )
        raise ClassStarted("the class has already started", class_id=class_id)
    if by_teacher or refund_due(cancelled.start_at, now, rules):
        await ledger.deposit(
            session,
            cancelled.student_id,
            ledger.charge_of(cancelled),
            "refund",
            actor,
            now,
            class_id=cancelled.id,
        )
        cancelled.refunded = True
    if cancelled.timeslot_id is not None:
        if by_teacher:
            await inventory.remove(session, cancelled.timeslot_id, now)
        else:
            await inventory.give_back(
                session,
                cancelled.timeslot_id,
                now,
                early=refund_due(cancelled.start_at, now, rules),
            )
        await audit.record(
            session,
            "timeslot",
            [cancelled.timeslot_id],
            "removed" if by_teacher else "freed",
            actor,
            now,
            class_id=class_id,
        )
    await audit.record(
        session,
        "class",
        [class_id],
        "cancelled",
        actor,
        now,
        refunded=cancelled.refunded,
        reason=reason,
        by_teacher=by_teacher,
    )
    return cancelled


async def get_class(session: AsyncSession, class_id: int) -> Class:
    return await get_or_404(session, Class, "class", class_id)


async def classes_of_student(
    session: AsyncSession, student_id: int, start_from: datetime | None, limit: int
) -> list[Class]:
    await get_student(session, student_id)
    query = select(Class).where(Class.student_id == student_id)
    if start_from is not None:
        query = query.where(Class.start_at >= start_from)
    rows = await session.scalars(query.order_by(Class.start_at, Class.id).limit(limit))
    return list(rows)
