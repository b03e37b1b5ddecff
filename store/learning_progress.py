"""Learning progress (CUR-1 bootcamp, TMK-7, CC-8) and the all-round advanced pair (全项进阶):
one class with a Chinese and one with a foreign teacher, booked together or not at all, both on
the progress's next lesson, which then advances.

The progress row is advanced by a conditional UPDATE first, so two bookings of the same progress
wait for each other; the slots are then taken in id order, as LP-8's batch takes them.
"""

from datetime import datetime

from sqlalchemy import case, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor
from domain.errors import (
    LearningProgressClosed,
    LearningProgressExists,
    NotFound,
    SameTimeslot,
    TeacherKindMismatch,
)
from domain.learning_progress import ProgressState, lesson_name
from domain.payment import Payment
from domain.rules import BookingRules
from domain.words import CourseType, TeacherKind
from store import audit, classes, inventory
from store.models import Class, LearningProgress, Teacher
from store.people import get_student


async def create(
    session: AsyncSession,
    *,
    student_id: int,
    course: str,
    lessons: int | None,
    first_lesson: int,
    actor: Actor,
    now: datetime,
) -> LearningProgress:
    """Enrol the student in the course; one progress per student and course."""
    await get_student(session, student_id)
    created: LearningProgress | None = await session.scalar(
        insert(LearningProgress)
        .values(
            student_id=student_id,
            course=course,
            next_lesson=first_lesson,
            lessons=lessons,
            state=ProgressState.active,
            channel=actor.channel.value,
            actor_id=actor.id,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=[LearningProgress.student_id, LearningProgress.course]
        )
        .returning(LearningProgress)
    )
    if created is None:
        existing = await session.scalar(
            select(LearningProgress.id).where(
                LearningProgress.student_id == student_id, LearningProgress.course == course
            )
        )
        raise LearningProgressExists(
            "the student already has a progress in this course",
            student_id=student_id,
            course=course,
            learning_progress_id=existing,
        )
    return created


async def start(
    session: AsyncSession,
    *,
    student_id: int,
    course_type: CourseType,
    lessons: int | None,
    actor: Actor,
    now: datetime,
) -> LearningProgress:
    """H5-6, LP-5: the student's progress in the course, from lesson 1; once per student and
    course (`409 learning_progress_exists`)."""
    progress = await create(
        session,
        student_id=student_id,
        course=course_type.value,
        lessons=lessons,
        first_lesson=1,
        actor=actor,
        now=now,
    )
    await audit.record(
        session,
        "progress",
        [progress.id],
        "course_started",
        actor,
        now,
        student_id=student_id,
        course_type=course_type.value,
    )
    return progress


async def of_student(session: AsyncSession, student_id: int) -> list[LearningProgress]:
    await get_student(session, student_id)
    rows = await session.scalars(
        select(LearningProgress)
        .where(LearningProgress.student_id == student_id)
        .order_by(LearningProgress.id)
    )
    return list(rows)


async def advance(
    session: AsyncSession, *, progress_id: int, student_id: int, now: datetime
) -> tuple[LearningProgress, int]:
    """Take the progress's next lesson: the progress after, and the lesson taken."""
    after = LearningProgress.next_lesson + 1
    advanced = await session.scalar(
        update(LearningProgress)
        .where(
            LearningProgress.id == progress_id,
            LearningProgress.student_id == student_id,
            LearningProgress.state == ProgressState.active,
        )
        .values(
            next_lesson=after,
            state=case(
                (
                    LearningProgress.lessons.is_not(None) & (after > LearningProgress.lessons),
                    ProgressState.completed.value,
                ),
                else_=ProgressState.active.value,
            ),
            updated_at=now,
        )
        .returning(LearningProgress)
        .execution_options(populate_existing=True)
    )
    if advanced is None:
        row = await session.get(LearningProgress, progress_id)
        if row is None or row.student_id != student_id:
            raise NotFound("learning_progress", progress_id)
        raise LearningProgressClosed(
            "the learning progress is not active",
            learning_progress_id=row.id,
            state=row.state.value,
        )
    return advanced, advanced.next_lesson - 1


async def book_pair(
    session: AsyncSession,
    *,
    student_id: int,
    progress_id: int,
    chinese_timeslot_id: int,
    foreign_timeslot_id: int,
    payment: Payment,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> tuple[LearningProgress, list[Class], list[tuple[str, int, int]]]:
    """CUR-1: the Chinese and the foreign teacher's classes of the next lesson, all or nothing.

    Returns the progress, the two classes (Chinese first), and any teacher-cancel hold flows to
    tell (flow id, class id, timeslot id) once committed."""
    if chinese_timeslot_id == foreign_timeslot_id:
        raise SameTimeslot(
            "the Chinese and the foreign class need two timeslots", timeslot_id=chinese_timeslot_id
        )
    await get_student(session, student_id)
    wanted = {TeacherKind.chinese: chinese_timeslot_id, TeacherKind.foreign: foreign_timeslot_id}
    for kind, timeslot_id in wanted.items():
        slot = await inventory.get_timeslot(session, timeslot_id)
        teacher = await session.get_one(Teacher, slot.teacher_id)
        if teacher.kind is not kind:
            raise TeacherKindMismatch(
                f"the {kind.value} class needs a {kind.value} teacher's timeslot",
                timeslot_id=timeslot_id,
                teacher_id=teacher.id,
                kind=teacher.kind.value,
                expected=kind.value,
            )
    progress, lesson = await advance(
        session, progress_id=progress_id, student_id=student_id, now=now
    )
    booked: dict[int, Class] = {}
    held_slots_booked: list[tuple[str, int, int]] = []
    for timeslot_id in sorted(wanted.values()):
        cls, hold_flow = await classes.book_class(
            session,
            student_id=student_id,
            timeslot_id=timeslot_id,
            course_type=CourseType.advanced,
            payment=payment,
            lesson=lesson_name(progress.course, lesson),
            actor=actor,
            now=now,
            rules=rules,
        )
        booked[timeslot_id] = cls
        if hold_flow is not None:
            held_slots_booked.append((hold_flow, cls.id, timeslot_id))
    pair = [booked[chinese_timeslot_id], booked[foreign_timeslot_id]]
    await audit.record(
        session,
        "class",
        [c.id for c in pair],
        "advanced_pair",
        actor,
        now,
        learning_progress_id=progress.id,
        lesson=lesson,
        pair=[c.id for c in pair],
    )
    return progress, pair, held_slots_booked
