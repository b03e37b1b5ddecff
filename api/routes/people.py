"""Teachers and students: registration by staff channels, reading by those who may."""

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context, caller, describe
from api.types import Id, IdParam, Text, TimeZone
from domain.channels import Operation
from domain.words import CourseType, TeacherKind
from store import people

router = APIRouter(prefix="/v1", tags=["people"])


class NewTeacher(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    kind: TeacherKind
    time_zone: TimeZone = "UTC"
    course_types: list[CourseType] = Field(min_length=1)


class TeacherOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    kind: TeacherKind
    time_zone: str
    course_types: list[CourseType]
    created_at: datetime


class NewStudent(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    level: int = Field(1, ge=0, le=20)
    time_zone: TimeZone = "Asia/Shanghai"
    exclusive_teacher_id: Id | None = None


class StudentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    level: int
    time_zone: str
    exclusive_teacher_id: int | None
    created_at: datetime


@router.post(
    "/teachers",
    status_code=201,
    **describe(Operation.register_teacher, [], "Register a foreign or Chinese teacher."),
)
async def register_teacher(
    body: NewTeacher, ctx: Context = caller(Operation.register_teacher)
) -> TeacherOut:
    async def op(session: AsyncSession) -> TeacherOut:
        teacher = await people.register_teacher(
            session,
            name=body.name,
            kind=body.kind,
            time_zone=body.time_zone,
            course_types=body.course_types,
            now=ctx.now,
        )
        return TeacherOut.model_validate(teacher)

    return await ctx.run(body, TeacherOut, op)


@router.get("/teachers/{teacher_id}", **describe(Operation.read_teacher, [], "A teacher."))
async def read_teacher(
    teacher_id: IdParam, ctx: Context = caller(Operation.read_teacher)
) -> TeacherOut:
    async def op(session: AsyncSession) -> TeacherOut:
        return TeacherOut.model_validate(await people.get_teacher(session, teacher_id))

    return await ctx.read(op)


@router.post(
    "/students",
    status_code=201,
    **describe(Operation.register_student, [], "Register a student."),
)
async def register_student(
    body: NewStudent, ctx: Context = caller(Operation.register_student)
) -> StudentOut:
    async def op(session: AsyncSession) -> StudentOut:
        student = await people.register_student(
            session,
            name=body.name,
            level=body.level,
            time_zone=body.time_zone,
            exclusive_teacher_id=body.exclusive_teacher_id,
            now=ctx.now,
        )
        return StudentOut.model_validate(student)

    return await ctx.run(body, StudentOut, op)


@router.get("/students/{student_id}", **describe(Operation.read_student, [], "A student."))
async def read_student(
    student_id: IdParam, ctx: Context = caller(Operation.read_student)
) -> StudentOut:
    ctx.acts_for_student(student_id)

    async def op(session: AsyncSession) -> StudentOut:
        return StudentOut.model_validate(await people.get_student(session, student_id))

    return await ctx.read(op)
