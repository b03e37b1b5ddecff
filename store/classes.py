"""Classes: book an open slot and pay for it, cancel with the 24 h refund rule.

Each operation runs in the caller's transaction: the slot, the class, the ledger entry and the
audit rows commit together or not at all.
"""

from collections.abc import Sequence
from datetime import datetime

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
    BookingRules,
    check_student_can_book,
    check_student_takes,
    check_teaches,
    refund_due,
)
from domain.words import ClassState, CourseType, Direction
from store import audit, holds, inventory, ledger
from store.db import get_or_404
from store.models import Class, Teacher, Timeslot
from store.people import get_student


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
) -> tuple[Class, str | None]:
    """PAR-1, H5-1, H5-3, H5-4, LP-2: book an open slot, paid at once.

    Booking one of the slots a teacher offered after cancelling (TCH-5) ends that hold: the
    other offered slots are removed in the same transaction, and the hold's flow id comes back
    with the class, for the caller to tell the flow once committed.
    """
    student = await get_student(session, student_id)
    check_student_takes(student.id, student.level, course_type)
    slot = await inventory.take_slot(
        session, timeslot_id, student_id=student_id, now=now, rules=rules
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
    )
    if holds.is_offered(slot):
        await holds.held_slot_booked(session, slot, booked, actor, now)
        return booked, slot.origin
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
) -> Class:
    """The class on a slot this transaction has taken, paid with the charge."""
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
) -> Class:
    """Insert the class and debit its payment; StudentBusy if the student has a class then.

    With no teacher and no timeslot it is an over-booked class, matched later (SD-5).
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
