"""Inventory: teachers open and close their timeslots; everyone reads availability."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context, caller, describe
from api.types import Id, IdParam, UtcDatetime
from domain.channels import ALLOWED, PARENTS, Operation, check_sells
from domain.errors import Forbidden
from domain.values import LocalTime, TimeZone
from domain.week_pattern import PatternTime
from domain.weekly import Weekday
from domain.words import CourseType, Direction, Product, TimeslotState
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


class PatternStart(BaseModel):
    weekday: Weekday
    start: LocalTime = Field(description="local time in the pattern's time zone, HH:MM")


class WeekPattern(BaseModel):
    first_week: date = Field(description="the Monday (in the pattern's time zone) of week 1")
    weeks: int = Field(1, ge=1, le=9, description="how many weeks from first_week")
    times: list[PatternStart] = Field(min_length=1, max_length=WEEK_OF_SLOTS)
    time_zone: TimeZone | None = Field(
        None, description="IANA zone of the times; default: the teacher's own time zone"
    )

    @field_validator("first_week")
    @classmethod
    def _monday(cls, first_week: date) -> date:
        if first_week.weekday() != 0:
            raise ValueError("first_week is a Monday")
        return first_week


class PatternSlot(TimeslotOut):
    local_start: datetime = Field(description="start_at in the pattern's time zone")


class PatternSkip(BaseModel):
    start_at: datetime | None = Field(description="UTC; null if the local time does not exist")
    local_start: datetime
    reason: str = Field(
        description="no_such_local_time, in_past, outside_booking_window or already_open"
    )


class PatternOpened(BaseModel):
    time_zone: str
    opened: list[PatternSlot]
    skipped: list[PatternSkip]


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
    "/teachers/{teacher_id}/timeslots/week-pattern",
    status_code=201,
    **describe(
        Operation.open_timeslots,
        ["TCH-1", "FM-6"],
        "Open general timeslots from a week pattern in the teacher's own time zone (or "
        "time_zone, an IANA name): each weekday and local start, for `weeks` weeks from the "
        "Monday first_week, becomes the UTC slot of that day, across daylight-saving changes "
        "(America/New_York Mondays 19:00: Monday 23:00 UTC in summer time, Tuesday 00:00 UTC in "
        "winter time). Skipped, with the reason: a local time that does not exist that day "
        "(no_such_local_time), starts in the past (in_past) or past 8 weeks ahead "
        "(outside_booking_window), starts with a live slot (already_open). A start off the "
        ":00/:30 UTC grid is 422 off_grid. Answers in UTC and in local time.",
    ),
)
async def open_week_pattern(
    teacher_id: IdParam, body: WeekPattern, ctx: Context = caller(Operation.open_timeslots)
) -> PatternOpened:
    ctx.acts_for_teacher(teacher_id)

    async def op(session: AsyncSession) -> PatternOpened:
        zone, opened, skipped = await inventory.open_week_pattern(
            session,
            teacher_id=teacher_id,
            first_week=body.first_week,
            weeks=body.weeks,
            times=[PatternTime(weekday=t.weekday, start=t.start) for t in body.times],
            time_zone=body.time_zone,
            actor=ctx.actor,
            now=ctx.now,
            rules=ctx.rules,
        )
        tz = ZoneInfo(zone)
        return PatternOpened(
            time_zone=zone,
            opened=[
                PatternSlot(
                    **TimeslotOut.model_validate(slot).model_dump(),
                    local_start=slot.start_at.astimezone(tz),
                )
                for slot in opened
            ],
            skipped=[
                PatternSkip(start_at=start.start_at, local_start=start.local, reason=reason)
                for start, reason in skipped
            ],
        )

    return await ctx.run(body, PatternOpened, op)


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
        ["PAR-1", "H5-1", "SD-2", "INT-1"],
        "Availability: open general timeslots in [start_from, start_to), by teacher and course "
        "type; with student_id also the timeslots held for that student (for that student's "
        "parents and staff channels; the teacher portal may not: 403). Slots the exclusive-"
        "teacher window still keeps for an exclusive teacher's own students (SD-2) are left "
        "out with student_id unless that student is one of them, and always for parent "
        "channels (a parent without student_id sees none of them); staff and teacher channels "
        "without student_id see them. Slots directed at a product line (INT-1) are listed "
        "only with that `product`, for a channel that sells it (else 403 "
        "product_not_sold_by_channel, as when booking with it).",
    ),
)
async def availability(
    start_from: UtcDatetime,
    start_to: UtcDatetime,
    teacher_id: IdParam | None = None,
    course_type: CourseType | None = None,
    student_id: IdParam | None = None,
    product: Product | None = None,
    limit: int = Query(200, ge=1, le=1000),
    ctx: Context = caller(Operation.read_availability),
) -> Response:
    if product is not None:
        check_sells(ctx.actor.channel, product)
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
        # SD-2: a student (or a parent, who always books for one) is not shown the slots the
        # exclusive-teacher window keeps from them; staff and teachers without one see all.
        hide_kept=student_id is not None or ctx.actor.channel in PARENTS,
        rules=ctx.rules,
        product=product,
    )
    return Response(answer, media_type="application/json")
