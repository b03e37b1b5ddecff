"""Staff changes to classes: force-book (FM-1), change teacher (FM-5, TMK-3, CC-3), change
student (TMK-5, CC-5).

Each runs in the caller's transaction: the slots, the class, the ledger entries and the audit
rows commit together or not at all. The teacher's time is claimed by `inventory.claim_at` (the
partial unique index on live slots decides), the student's by `uq_classes_live_student_start`,
the money by the ledger's guarded debits; a class being changed is locked first, so two
changes of one class take turns and the second sees the first's result.
"""

from datetime import datetime
from typing import Literal

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor, Channel
from domain.errors import (
    ClassNotBooked,
    ClassStarted,
    InPast,
    OpenClassSeat,
    StudentBusy,
    TrialClassesOnly,
)
from domain.overbooking import NoTeacherToSwap
from domain.payment import Payment
from domain.rules import BookingRules, check_on_grid, check_student_takes, check_teaches
from domain.words import ClassState, CourseType, Direction, TimeslotState
from store import audit, courses, inventory, ledger
from store.classes import paid_class
from store.db import get_or_404
from store.models import Class, Timeslot
from store.people import get_student, get_teacher

FORCE_BOOK = "force-book"
CHANGE_TEACHER = "change-teacher-"

OldSlot = Literal["reopen", "remove"]


async def force_book(
    session: AsyncSession,
    *,
    student_id: int,
    teacher_id: int,
    start_at: datetime,
    course_type: CourseType,
    payment: Payment,
    reason: str,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> Class:
    """FM-1: a slot directed at the student on the teacher's time (new, or the teacher's open
    general slot at that start taken over), booked and paid at once, whatever the booking
    windows say; never over a class of the teacher (`teacher_busy`) or of the student
    (`student_busy`) at that start."""
    check_on_grid(start_at)
    if start_at <= now:
        raise InPast("the class starts in the past", start_at=start_at.isoformat())
    student = await get_student(session, student_id)
    check_student_takes(student.id, student.level, course_type)
    await courses.check_started(session, student_id, course_type)
    teacher = await get_teacher(session, teacher_id)
    check_teaches(teacher.id, teacher.kind, teacher.course_types, course_type)
    charge = await ledger.charge_for(session, student_id, course_type, payment, now, rules)
    slot = await inventory.claim_at(
        session,
        teacher_id=teacher_id,
        start_at=start_at,
        state=TimeslotState.booked,
        direction=Direction.student,
        target=str(student_id),
        origin=FORCE_BOOK,
        now=now,
    )
    booked = await paid_class(
        session,
        student_id=student_id,
        teacher_id=teacher_id,
        timeslot_id=slot.id,
        start_at=start_at,
        course_type=course_type,
        charge=charge,
        lesson=None,
        actor=actor,
        now=now,
    )
    await audit.record(
        session, "timeslot", [slot.id], "force_booked", actor, now, class_id=booked.id
    )
    await audit.record(
        session,
        "class",
        [booked.id],
        "force_booked",
        actor,
        now,
        timeslot_id=slot.id,
        payment=charge.asset.value,
        amount=charge.amount,
        reason=reason,
    )
    return booked


async def change_teacher(
    session: AsyncSession,
    *,
    class_id: int,
    teacher_id: int,
    old_slot: OldSlot,
    reason: str | None,
    actor: Actor,
    now: datetime,
) -> Class:
    """FM-5, TMK-3, CC-3: before the start, the class moves to another teacher at the same
    start, on a slot directed at its student (new, or that teacher's open general slot taken
    over); the old slot opens again as general inventory or is removed. Payment untouched."""
    cls = await _booked_not_started(session, class_id, now)
    if actor.channel in (Channel.tmk, Channel.cc) and cls.course_type is not CourseType.trial:
        raise TrialClassesOnly(
            "TMK and CC change the teacher of trial classes only",
            class_id=class_id,
            course_type=cls.course_type.value,
        )
    if cls.teacher_id is None or cls.timeslot_id is None:
        raise NoTeacherToSwap("the class has no teacher yet", class_id=class_id)
    teacher = await get_teacher(session, teacher_id)
    check_teaches(teacher.id, teacher.kind, teacher.course_types, cls.course_type)
    new = await inventory.claim_at(
        session,
        teacher_id=teacher_id,
        start_at=cls.start_at,
        state=TimeslotState.booked,
        direction=Direction.student,
        target=str(cls.student_id),
        origin=f"{CHANGE_TEACHER}{class_id}",
        now=now,
    )
    old_teacher, old = cls.teacher_id, cls.timeslot_id
    freed = {"state": TimeslotState.removed, "updated_at": now}
    if old_slot == "reopen":
        freed = {
            "state": TimeslotState.open,
            "direction": Direction.general,
            "direction_target": None,
            "expires_at": None,
            "updated_at": now,
        }
    await session.execute(update(Timeslot).where(Timeslot.id == old).values(**freed))
    cls.teacher_id, cls.timeslot_id, cls.updated_at = teacher_id, new.id, now
    await session.flush()
    await audit.record(
        session,
        "class",
        [class_id],
        "teacher_changed",
        actor,
        now,
        old_teacher_id=old_teacher,
        new_teacher_id=teacher_id,
        old_timeslot_id=old,
        new_timeslot_id=new.id,
        old_slot=old_slot,
        reason=reason,
    )
    await audit.record(
        session,
        "timeslot",
        [old],
        "freed" if old_slot == "reopen" else "removed",
        actor,
        now,
        class_id=class_id,
        teacher_changed=True,
    )
    await audit.record(
        session, "timeslot", [new.id], "booked", actor, now, class_id=class_id, teacher_changed=True
    )
    return cls


async def change_student(
    session: AsyncSession,
    *,
    class_id: int,
    student_id: int,
    payment: Payment,
    reason: str | None,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> Class:
    """TMK-5, CC-5: another student takes the booked class before it starts; the first is
    refunded in full whatever the time to the start, the second pays for the class's course
    type. A seat of an open class is not one: its student cancels it and the other takes a
    seat, under the seat rules (listing, payment in credits)."""
    cls = await _booked_not_started(session, class_id, now)
    if cls.open_class_id is not None:
        raise OpenClassSeat(
            "a seat of an open class does not change student: cancel it and take another seat",
            class_id=class_id,
            open_class_id=cls.open_class_id,
        )
    if cls.student_id == student_id:
        raise StudentBusy(
            "the student already has this class",
            student_id=student_id,
            start_at=cls.start_at.isoformat(),
            class_id=class_id,
        )
    newcomer = await get_student(session, student_id)
    check_student_takes(newcomer.id, newcomer.level, cls.course_type)
    await courses.check_started(session, student_id, cls.course_type)
    charge = await ledger.charge_for(session, student_id, cls.course_type, payment, now, rules)
    old_student, paid, start_at = cls.student_id, ledger.charge_of(cls), cls.start_at
    await ledger.deposit(session, old_student, paid, "refund", actor, now, class_id=class_id)
    try:
        async with session.begin_nested():
            cls.student_id = student_id
            cls.payment_asset, cls.payment_key = charge.asset, charge.key
            cls.payment_amount, cls.updated_at = charge.amount, now
            await session.flush()
    except IntegrityError:
        raise StudentBusy(
            "the student already has a class at that time",
            student_id=student_id,
            start_at=start_at.isoformat(),
        ) from None
    await ledger.withdraw(session, student_id, charge, "booking", actor, now, class_id=class_id)
    change = {
        "old_student_id": old_student,
        "new_student_id": student_id,
        "refunded": paid.asset.value,
        "refunded_amount": paid.amount,
        "payment": charge.asset.value,
        "amount": charge.amount,
        "reason": reason,
    }
    # The class's student (and teacher) from the trigger; a second row for the student taken
    # off, so that the change reaches their parent channel's feed too.
    await audit.record(session, "class", [class_id], "student_changed", actor, now, **change)
    await audit.record_concerning(
        session, old_student, "class", class_id, "student_changed", actor, now, change
    )
    return cls


async def _booked_not_started(session: AsyncSession, class_id: int, now: datetime) -> Class:
    """The class, locked for this transaction, if it is booked and has not started."""
    cls = await get_or_404(session, Class, "class", class_id, lock=True)
    if cls.state is not ClassState.booked:
        raise ClassNotBooked("the class is not booked", class_id=class_id, state=cls.state.value)
    if cls.start_at <= now:
        raise ClassStarted(
            "the class has already started", class_id=class_id, start_at=cls.start_at.isoformat()
        )
    return cls
