"""Learning progress (CUR-1 bootcamp, TMK-7, CC-8) and the all-round advanced pair booking
(全项进阶, CUR-1, CC-2): a Chinese and a foreign teacher's classes of the next lesson."""

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context, caller, describe
from api.schemas import ClassOut
from api.types import Id, IdParam
from domain.channels import Operation
from domain.learning_progress import ADVANCED_BOOTCAMP, ProgressView
from domain.payment import Payment
from domain.words import CourseType
from store import learning_progress

router = APIRouter(prefix="/v1", tags=["learning progress"])


class NewProgress(BaseModel):
    student_id: Id
    course: str = Field(ADVANCED_BOOTCAMP, pattern=r"^[a-z0-9_]{1,32}$")
    lessons: int | None = Field(None, ge=1, le=1000, description="omit for open-ended")
    first_lesson: int = Field(1, ge=1, le=1000)


class StartCourse(BaseModel):
    course_type: Literal["special", "major"] = Field(
        description="the course to start: special (专项课) or major"
    )
    lessons: int | None = Field(None, ge=1, le=1000, description="omit for open-ended")


class AdvancedPair(BaseModel):
    student_id: Id
    learning_progress_id: Id
    chinese_timeslot_id: Id
    foreign_timeslot_id: Id
    payment: Payment = Payment()


class PairBooked(BaseModel):
    learning_progress: ProgressView
    lesson: int
    chinese: ClassOut
    foreign: ClassOut


@router.post(
    "/learning-progress",
    status_code=201,
    **describe(
        Operation.create_learning_progress,
        ["CUR-1", "TMK-7", "CC-8"],
        "Enrol a student in a course (default advanced_bootcamp), at first_lesson, out of "
        "`lessons` (omit for open-ended). One per student and course: 409 "
        "learning_progress_exists.",
    ),
)
async def create_progress(
    body: NewProgress, ctx: Context = caller(Operation.create_learning_progress)
) -> ProgressView:
    async def op(session: AsyncSession) -> ProgressView:
        created = await learning_progress.create(
            session,
            student_id=body.student_id,
            course=body.course,
            lessons=body.lessons,
            first_lesson=body.first_lesson,
            actor=ctx.actor,
            now=ctx.now,
        )
        return ProgressView.model_validate(created)

    return await ctx.run(body, ProgressView, op)


@router.post(
    "/students/{student_id}/courses",
    status_code=201,
    **describe(
        Operation.start_course,
        ["H5-6", "LP-5"],
        "Start the student's course (开课): special or major. It is stored as the student's "
        "learning progress in that course (course = the course type), from lesson 1. A special "
        "class (H5-3) is booked or requested only once the special course has started: 409 "
        "course_not_started before. Once per student and course: 409 learning_progress_exists. "
        "A parent starts only their own student's course.",
    ),
)
async def start_course(
    student_id: IdParam, body: StartCourse, ctx: Context = caller(Operation.start_course)
) -> ProgressView:
    ctx.acts_for_student(student_id)

    async def op(session: AsyncSession) -> ProgressView:
        started = await learning_progress.start(
            session,
            student_id=student_id,
            course_type=CourseType(body.course_type),
            lessons=body.lessons,
            actor=ctx.actor,
            now=ctx.now,
        )
        return ProgressView.model_validate(started)

    return await ctx.run(body, ProgressView, op)


@router.get(
    "/students/{student_id}/learning-progress",
    **describe(Operation.read_student, ["CUR-1"], "The student's learning progress, per course."),
)
async def progress_of_student(
    student_id: IdParam, ctx: Context = caller(Operation.read_student)
) -> list[ProgressView]:
    ctx.acts_for_student(student_id)

    async def read(session: AsyncSession) -> list[ProgressView]:
        rows = await learning_progress.of_student(session, student_id)
        return [ProgressView.model_validate(r) for r in rows]

    return await ctx.read(read)


@router.post(
    "/advanced-classes",
    status_code=201,
    **describe(
        Operation.book_advanced_pair,
        ["CUR-1", "CC-2"],
        "All-round advanced (全项进阶): book a Chinese teacher's and a foreign teacher's open "
        "timeslots for course type advanced, both or neither, each class's lesson the learning "
        "progress's next lesson, which then advances. 422 teacher_kind_mismatch, "
        "course_type_not_taught; 409 learning_progress_closed.",
    ),
)
async def book_advanced_pair(
    body: AdvancedPair, ctx: Context = caller(Operation.book_advanced_pair)
) -> PairBooked:
    async def op(session: AsyncSession) -> PairBooked:
        progress, pair, holds = await learning_progress.book_pair(
            session,
            student_id=body.student_id,
            progress_id=body.learning_progress_id,
            chinese_timeslot_id=body.chinese_timeslot_id,
            foreign_timeslot_id=body.foreign_timeslot_id,
            payment=body.payment,
            actor=ctx.actor,
            now=ctx.now,
            rules=ctx.rules,
        )
        for flow_id, class_id, timeslot_id in holds:
            ctx.after_commit(ctx.flows.tell_hold_booked, flow_id, class_id, timeslot_id)
        return PairBooked(
            learning_progress=ProgressView.model_validate(progress),
            lesson=progress.next_lesson - 1,
            chinese=ClassOut.model_validate(pair[0]),
            foreign=ClassOut.model_validate(pair[1]),
        )

    return await ctx.run(body, PairBooked, op)
