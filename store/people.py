"""Teachers and students."""

from collections.abc import Sequence
from datetime import datetime

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


async def get_teacher(session: AsyncSession, teacher_id: int) -> Teacher:
    return await get_or_404(session, Teacher, "teacher", teacher_id)


async def get_student(session: AsyncSession, student_id: int) -> Student:
    return await get_or_404(session, Student, "student", student_id)
