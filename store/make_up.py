"""SD-4 with a regular exclusive teacher: the LP books a make-up class (补约) for a student with
their exclusive teacher (students.exclusive_teacher_id), on one of that teacher's open slots.

The exclusive priority window (SD-2) never keeps a teacher's slots from their own exclusive
students, so the make-up goes through inside it too; the contract make-up (dual-excellence
teachers) is store.contracts.make_up."""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor
from domain.errors import NoExclusiveTeacher, NotExclusiveTeachersSlot
from domain.payment import Payment
from domain.rules import BookingRules
from domain.words import CourseType
from store import audit, classes, inventory
from store.models import Class
from store.people import get_student


async def with_exclusive_teacher(
    session: AsyncSession,
    *,
    student_id: int,
    timeslot_id: int,
    course_type: CourseType,
    payment: Payment,
    reason: str | None,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> tuple[Class, str | None]:
    """The class booked, and the teacher-cancel hold flow to tell if the slot was offered."""
    student = await get_student(session, student_id)
    if student.exclusive_teacher_id is None:
        raise NoExclusiveTeacher("the student has no exclusive teacher", student_id=student_id)
    slot = await inventory.get_timeslot(session, timeslot_id)
    if slot.teacher_id != student.exclusive_teacher_id:
        raise NotExclusiveTeachersSlot(
            "the timeslot is not the student's exclusive teacher's",
            timeslot_id=timeslot_id,
            teacher_id=slot.teacher_id,
            exclusive_teacher_id=student.exclusive_teacher_id,
        )
    booked, hold_flow = await classes.book_class(
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
    await audit.record(
        session,
        "class",
        [booked.id],
        "make_up",
        actor,
        now,
        with_teacher="exclusive",
        teacher_id=slot.teacher_id,
        reason=reason,
    )
    return booked, hold_flow
