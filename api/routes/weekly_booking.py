"""Weekly booking: auto-booking rules (LP-1), exclusive teachers and their weekly pattern
(SD-1, H5-7), and the runs that book next week from them (SD-6, SD-1), with their reports."""

from datetime import date

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context, FlowCall, caller, describe
from api.types import Id, IdParam
from domain.auto_booking import ResultView, RuleView, RunKind, RunRequest, RunView, Wish
from domain.channels import Operation
from domain.words import CourseType
from store import auto_booking, exclusive
from workflows.auto_booking import WeeklyBookingWorkflow
from workflows.common import search_attributes, weekly_flow

router = APIRouter(prefix="/v1", tags=["weekly booking"])


class AutoBookingRule(BaseModel):
    wishes: list[Wish] = Field(min_length=1, max_length=14)
    teacher_ids: list[Id] = Field(default_factory=list, max_length=10)
    any_teacher: bool = True
    course_type: CourseType = CourseType.major
    active: bool = True


class ExclusiveTeacher(BaseModel):
    teacher_id: Id
    wishes: list[Wish] = Field(min_length=1, max_length=14)
    course_type: CourseType = CourseType.major


class NewRun(BaseModel):
    kind: RunKind = RunKind.auto
    student_id: Id | None = Field(None, description="omit to run for every student")
    week: date | None = Field(None, description="the Monday to book; default: next week")


@router.put(
    "/students/{student_id}/auto-booking-rule",
    **describe(
        Operation.save_booking_rules,
        ["LP-1"],
        "Save the student's auto-booking rule: wished weekly times (local, Asia/Shanghai) in "
        "order, preferred teachers in order, the course type, and whether any teacher will do.",
    ),
)
async def save_rule(
    student_id: IdParam, body: AutoBookingRule, ctx: Context = caller(Operation.save_booking_rules)
) -> RuleView:
    async def op(session: AsyncSession) -> RuleView:
        return await auto_booking.save_rule(
            session,
            student_id=student_id,
            kind="auto",
            wishes=body.wishes,
            teacher_ids=body.teacher_ids,
            any_teacher=body.any_teacher,
            course_type=body.course_type,
            active=body.active,
            actor=ctx.actor,
            now=ctx.now,
        )

    return await ctx.run(body, RuleView, op)


@router.get(
    "/students/{student_id}/auto-booking-rule",
    **describe(Operation.read_booking_rules, ["LP-1"], "The student's auto-booking rule."),
)
async def read_rule(
    student_id: IdParam, ctx: Context = caller(Operation.read_booking_rules)
) -> RuleView:
    async def read(session: AsyncSession) -> RuleView:
        return await auto_booking.get_rule(session, student_id, "auto")

    return await ctx.read(read)


@router.put(
    "/students/{student_id}/exclusive-teacher",
    **describe(
        Operation.set_exclusive_teacher,
        ["SD-1", "H5-7"],
        "Set the student's exclusive teacher and weekly pattern. Every Monday at 08:00 "
        "(Level 7: 00:00) Asia/Shanghai the next week's classes are booked with that teacher; "
        "until 08:30 the teacher's next-week slots are kept for their exclusive students (SD-2).",
    ),
)
async def set_exclusive_teacher(
    student_id: IdParam,
    body: ExclusiveTeacher,
    ctx: Context = caller(Operation.set_exclusive_teacher),
) -> RuleView:
    async def op(session: AsyncSession) -> RuleView:
        return await auto_booking.set_exclusive_teacher(
            session,
            student_id=student_id,
            teacher_id=body.teacher_id,
            wishes=body.wishes,
            course_type=body.course_type,
            actor=ctx.actor,
            now=ctx.now,
        )

    return await ctx.run(body, RuleView, op)


@router.get(
    "/students/{student_id}/exclusive-teacher",
    **describe(
        Operation.read_exclusive_teacher,
        ["H5-7", "H5-8", "SD-2"],
        "The student's exclusive teacher (null if none) and weekly pattern, and the priority "
        "windows (SD-2): for next week and the week after, whether that week's slots of "
        "exclusive teachers are still kept for their own exclusive students, and until when "
        "(08:30 Asia/Shanghai on the Monday before the week). Inside an open window the student "
        "books their exclusive teacher's slots with POST /v1/classes; others get 409 "
        "slot_reserved. A parent reads only their own student.",
    ),
)
async def read_exclusive_teacher(
    student_id: IdParam, ctx: Context = caller(Operation.read_exclusive_teacher)
) -> exclusive.ExclusiveView:
    ctx.acts_for_student(student_id)

    async def read(session: AsyncSession) -> exclusive.ExclusiveView:
        return await exclusive.exclusive_of(session, student_id, ctx.now, ctx.rules)

    return await ctx.read(read)


@router.post(
    "/booking-runs",
    status_code=201,
    **describe(
        Operation.run_weekly_booking,
        ["SD-6", "SD-1", "LP-1"],
        "Start a weekly booking run by hand (the Schedules start them every Monday): "
        "auto-booking or exclusive-teacher booking, for one student or for all, of next week "
        "or a given one. Workflow id: auto-booking-{id} / exclusive-booking-{id}. Next week's "
        "auto-booking waits for the dino-home window (Monday until 12:03, SD-3): 409 "
        "dino_home_window_open before.",
    ),
)
async def start_run(body: NewRun, ctx: Context = caller(Operation.run_weekly_booking)) -> RunView:
    request = RunRequest(
        kind=body.kind, actor=ctx.actor, week=body.week, student_id=body.student_id
    )

    async def reserve(session: AsyncSession) -> int:
        await auto_booking.check_run(session, request, ctx.now, ctx.rules)
        return await auto_booking.next_run_id(session)

    async def call(flow: FlowCall) -> RunView:
        return await ctx.flows.start_and_ask(
            WeeklyBookingWorkflow.run,
            request.model_copy(update={"run_id": flow.reserved}),
            flow_id=f"{body.kind.flow_prefix}-{flow.reserved}",
            update=WeeklyBookingWorkflow.started,
            update_id=flow.update_id,
            search_attributes=search_attributes(
                weekly_flow(body.kind), channel=ctx.actor.channel.value, student_id=body.student_id
            ),
        )

    return await ctx.ask_flow(body, RunView, call, reserve=reserve)


@router.get(
    "/booking-runs/{run_id}",
    **describe(
        Operation.read_booking_runs,
        ["SD-6", "SD-1"],
        "A run and its progress: students, rounds, classes booked and wishes not booked so far.",
    ),
)
async def read_run(run_id: IdParam, ctx: Context = caller(Operation.read_booking_runs)) -> RunView:
    async def read(session: AsyncSession) -> RunView:
        return await auto_booking.get_run(session, run_id)

    return await ctx.read(read)


@router.get(
    "/booking-runs/{run_id}/results",
    **describe(
        Operation.read_booking_runs,
        ["SD-6", "SD-1", "LP-1"],
        "The per-student report: for each wish, the class booked (and with whom) or the reason "
        "it was not (student_busy, insufficient_balance, preferred_teachers_busy, "
        "no_free_teacher, outside_booking_window, open_class_by_seat). Page with after_student.",
    ),
)
async def read_results(
    run_id: IdParam,
    student_id: IdParam | None = None,
    after_student: IdParam = Query(0, ge=0),
    limit: int = Query(1000, ge=1, le=10000),
    ctx: Context = caller(Operation.read_booking_runs),
) -> list[ResultView]:
    async def read(session: AsyncSession) -> list[ResultView]:
        return await auto_booking.results_of(session, run_id, student_id, limit, after_student)

    return await ctx.read(read)
