"""Inventory: teachers open and close their timeslots; everyone reads availability."""

from datetime import datetime

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context, caller, describe
from api.types import Id, IdParam, UtcDatetime
from domain.channels import ALLOWED, Operation
from domain.errors import Forbidden
from domain.words import CourseType, Direction, TimeslotState
from store import inventory

router = APIRouter(prefix="/v1", tags=["timeslots"])

WEEK_OF_SLOTS = 7 * 48


class TimeslotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    teacher_id: int
    start_at: datetime
    state: TimeslotState
    direction: Direction
    direction_target: str | None
    expires_at: datetime | None


class OpenTimeslots(BaseModel):
    start_at: list[UtcDatetime] = Field(min_length=1, max_length=WEEK_OF_SLOTS)


class Opened(BaseModel):
    opened: list[TimeslotOut]
    skipped: list[datetime] = Field(description="starts that already had a live timeslot")


class CloseTimeslots(BaseModel):
    timeslot_ids: list[Id] = Field(min_length=1, max_length=WEEK_OF_SLOTS)


class Closed(BaseModel):
    closed: list[TimeslotOut]


@router.post(
    "/teachers/{teacher_id}/timeslots",
    status_code=201,
    **describe(
        Operation.open_timeslots,
        ["TCH-1", "FM-6"],
        "Open general timeslots in bulk (up to a week of half hours). Starts on the :00/:30 "
        "grid, in the future, at most 8 weeks ahead; starts that already have a live slot are "
        "reported as skipped.",
    ),
)
async def open_timeslots(
    teacher_id: IdParam, body: OpenTimeslots, ctx: Context = caller(Operation.open_timeslots)
) -> Opened:
    ctx.acts_for_teacher(teacher_id)

    async def op(session: AsyncSession) -> Opened:
        opened, skipped = await inventory.open_timeslots(
            session,
            teacher_id=teacher_id,
            starts=body.start_at,
            actor=ctx.actor,
            now=ctx.now,
            rules=ctx.rules,
        )
        return Opened(opened=[TimeslotOut.model_validate(slot) for slot in opened], skipped=skipped)

    return await ctx.run(body, Opened, op)


@router.post(
    "/teachers/{teacher_id}/timeslots/close",
    **describe(
        Operation.close_timeslots,
        ["TCH-2", "FM-6"],
        "Close open, unbooked timeslots: all of them, or none if any is booked or gone.",
    ),
)
async def close_timeslots(
    teacher_id: IdParam, body: CloseTimeslots, ctx: Context = caller(Operation.close_timeslots)
) -> Closed:
    ctx.acts_for_teacher(teacher_id)

    async def op(session: AsyncSession) -> Closed:
        closed = await inventory.close_timeslots(
            session,
            teacher_id=teacher_id,
            timeslot_ids=body.timeslot_ids,
            actor=ctx.actor,
            now=ctx.now,
        )
        return Closed(closed=[TimeslotOut.model_validate(slot) for slot in closed])

    return await ctx.run(body, Closed, op)


@router.get(
    "/timeslots",
    response_model=list[TimeslotOut],
    **describe(
        Operation.read_availability,
        ["PAR-1", "H5-1"],
        "Availability: open general timeslots in [start_from, start_to), by teacher and course "
        "type; with student_id also the timeslots held for that student (for that student's "
        "parents and staff channels; the teacher portal may not: 403).",
    ),
)
async def availability(
    start_from: UtcDatetime,
    start_to: UtcDatetime,
    teacher_id: IdParam | None = None,
    course_type: CourseType | None = None,
    student_id: IdParam | None = None,
    limit: int = Query(200, ge=1, le=1000),
    ctx: Context = caller(Operation.read_availability),
) -> Response:
    if student_id is not None:
        # Held slots are that student's business: the channels that may read the student (not
        # the teacher portal), and a parent only as that student.
        if ctx.actor.channel not in ALLOWED[Operation.read_student]:
            raise Forbidden(
                f"channel {ctx.actor.channel.value} may not list the slots held for a student",
                channel=ctx.actor.channel.value,
                operation=Operation.read_student.value,
            )
        ctx.acts_for_student(student_id)

    answer = await inventory.availability_json(
        ctx.sessions,
        start_from=start_from,
        start_to=start_to,
        teacher_id=teacher_id,
        course_type=course_type,
        for_student=student_id,
        now=ctx.now,
        limit=limit,
    )
    return Response(answer, media_type="application/json")
