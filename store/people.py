"""Teachers and students."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.rules import check_certification
from domain.words import CourseType, TeacherKind
from store.db import get_or_404
from store.models import Student, Teacher


async def register_teacher(
    session: AsyncSession,
    *,
    name: str,
    kind: TeacherKind,
    time_zone: str,
    course_types: Sequence[CourseType],
    now: datetime,
) -> Teacher:
    check_certification(kind, course_types)
    teacher = Teacher(
        name=name,
        kind=kind,
        time_zone=time_zone,
        course_types=sorted({c.value for c in course_types}),
        created_at=now,
    )
    session.add(teacher)
    await session.flush()
    return teacher


async def register_student(
    session: AsyncSession,
    *,
    name: str,
    level: int,
    time_zone: str,
    exclusive_teacher_id: int | None,
    now: datetime,
) -> Student:
    if exclusive_teacher_id is not None:
        await get_teacher(session, exclusive_teacher_id)
    student = Student(
        name=name,
        level=level,
        time_zone=time_zone,
        exclusive_teacher_id=exclusive_teacher_id,
        created_at=now,
    )
    session.add(student)
    await session.flush()
    return student


async def register_for_account(
    session: AsyncSession,
    *,
    channel: str,
    account_id: str,
    name: str,
    level: int,
    time_zone: str,
    now: datetime,
) -> tuple[Student, bool]:
    """The student of a parent's account in a channel (H5-10), registered on its first call;
    whether this call registered them. One INSERT ... ON CONFLICT DO NOTHING on the unique
    (channel, account): calls at once wait for the first to commit, then find its student."""
    student: Student | None = await session.scalar(
        insert(Student)
        .values(
            name=name,
            level=level,
            time_zone=time_zone,
            external_channel=channel,
            external_account_id=account_id,
            created_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=[Student.external_channel, Student.external_account_id],
            index_where=text("external_account_id IS NOT NULL"),
        )
        .returning(Student)
    )
    if student is not None:
        return student, True
    existing = await session.scalar(
        select(Student)
        .where(Student.external_channel == channel, Student.external_account_id == account_id)
        .execution_options(populate_existing=True)
    )
    assert existing is not None, "the conflicting row has committed"
    return existing, False


async def get_teacher(session: AsyncSession, teacher_id: int) -> Teacher:
    return await get_or_404(session, Teacher, "teacher", teacher_id)


async def get_student(session: AsyncSession, student_id: int) -> Student:
    return await get_or_404(session, Student, "student", student_id)
