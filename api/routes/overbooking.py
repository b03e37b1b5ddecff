"""Over-booking (超约): book with no teacher (TMK-1, CC-1, SD-5a), real booking after
registration (H5-10), instant class (H5-9), the classroom's entry report with its match
(CLS-2, SD-5c), and the in-class teacher swap (SD-5d, FM-7). Each over-booked class is
followed by its workflow, overbook-{class_id}."""

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context, caller, describe
from api.flows import Flows
from api.types import Id, IdParam, Text, TimeZone, UtcDatetime
from domain.channels import Operation
from domain.errors import Unavailable
from domain.overbooking import (
    OverbookedClassInput,
    OverbookKind,
    OverbookState,
    OverbookView,
    ReservationOutcome,
    StudentEntered,
    SwapView,
)
from domain.payment import Payment
from domain.words import ClassLabel, CourseType
from store import overbooking
from workflows.common import FlowKind, search_attributes
from workflows.overbooked_class import OverbookedClassWorkflow
from workflows.teacher_reservation import TeacherReservationWorkflow

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["over-booking"])


class NewOverbookedClass(BaseModel):
    student_id: Id
    start_at: UtcDatetime
    course_type: CourseType = CourseType.trial
    payment: Payment = Payment()


class NewStudentTrial(BaseModel):
    parent_account: Text = Field(
        min_length=1,
        max_length=64,
        description="the parent's account in the calling channel (e.g. a WeChat openid): one "
        "student per account",
    )
    name: Text = Field(min_length=1, max_length=200)
    level: int = Field(1, ge=0, le=20)
    time_zone: TimeZone = "Asia/Shanghai"
    start_at: UtcDatetime


class NewInstantClass(BaseModel):
    student_id: Id
    course_type: CourseType = CourseType.trial
    payment: Payment = Payment()


class SwapTeacher(BaseModel):
    label: ClassLabel = Field(
        description="the old teacher's outcome: teacher_it_issue or teacher_no_show"
    )
    reason: Text | None = Field(None, max_length=500)


class RunReservation(BaseModel):
    reason: Text | None = Field(None, max_length=500)


class OverbookedClassOut(BaseModel):
    overbooked: OverbookView
    swaps: list[SwapView]


async def _follow(
    ctx: Context, body: BaseModel, book: Callable[[AsyncSession], Awaitable[OverbookView]]
) -> OverbookView:
    """Book in one transaction, then start the class's flow (no transaction waits on
    Temporal). Starting is idempotent, so a replay of the same Idempotency-Key starts it too.
    If Temporal cannot take it, the booking is taken back and the caller gets 503: nothing
    happened, and a retry acts again."""
    booked = await ctx.run(body, OverbookView, book)
    try:
        await ctx.flows.start(
            OverbookedClassWorkflow.run,
            OverbookedClassInput(
                class_id=booked.class_id,
                student_id=booked.student_id,
                start_at=booked.start_at,
                wait_until=booked.wait_until,
                retry_every=ctx.rules.overbooking.retry_every,
                actor=ctx.actor,
            ),
            flow_id=overbooking.flow_id(booked.class_id),
            search_attributes=search_attributes(
                FlowKind.overbook,
                channel=ctx.actor.channel.value,
                student_id=booked.student_id,
                teacher_ids=[] if booked.teacher_id is None else [booked.teacher_id],
            ),
        )
    except Unavailable:
        await ctx.undo(
            lambda session: overbooking.undo_booking(
                session, class_id=booked.class_id, actor=ctx.actor, now=ctx.now
            )
        )
        raise
    return booked


@router.post(
    "/overbooked-classes",
    status_code=201,
    **describe(
        Operation.book_overbooked,
        ["TMK-1", "CC-1", "SD-5a"],
        "Book a class at start_at with no teacher, paid at once. A teacher is matched when the "
        "student enters the classroom. From 10 min to 14 days ahead (settings). Workflow id: "
        "overbook-{class_id}.",
    ),
)
async def book_overbooked(
    body: NewOverbookedClass, ctx: Context = caller(Operation.book_overbooked)
) -> OverbookView:
    ctx.acts_for_student(body.student_id)

    async def op(session: AsyncSession) -> OverbookView:
        return await overbooking.book(
            session,
            student_id=body.student_id,
            start_at=body.start_at,
            course_type=body.course_type,
            payment=body.payment,
            kind=OverbookKind.overbook,
            actor=ctx.actor,
            now=ctx.now,
            rules=ctx.rules,
        )

    return await _follow(ctx, body, op)


@router.post(
    "/overbooked-classes/real-booking",
    status_code=201,
    **describe(
        Operation.register_and_book_trial,
        ["H5-10"],
        "Register the student of the parent's account (parent_account, in the calling "
        "channel), give them their trial credit and book their trial through the over-booking "
        "path, in one transaction. The account's first call registers and grants; a later one "
        "finds the same student and grants nothing: 409 trial_already_booked while they have "
        "a trial class, else the trial is booked with the credit a cancellation gave back.",
    ),
)
async def register_and_book_trial(
    body: NewStudentTrial, ctx: Context = caller(Operation.register_and_book_trial)
) -> OverbookView:
    async def op(session: AsyncSession) -> OverbookView:
        return await overbooking.register_and_book_trial(
            session,
            parent_account=body.parent_account,
            name=body.name,
            level=body.level,
            time_zone=body.time_zone,
            start_at=body.start_at,
            actor=ctx.actor,
            now=ctx.now,
            rules=ctx.rules,
        )

    return await _follow(ctx, body, op)


@router.post(
    "/instant-classes",
    status_code=201,
    **describe(
        Operation.book_instant_class,
        ["H5-9"],
        "A class at the next :00/:30 (if within 20 min, a setting) with any free teacher, "
        "matched at once: a reserved pool slot first, else any open slot. 409 no_teacher_free "
        "if nobody is free; nothing is charged then.",
    ),
)
async def book_instant_class(
    body: NewInstantClass, ctx: Context = caller(Operation.book_instant_class)
) -> OverbookView:
    ctx.acts_for_student(body.student_id)

    async def op(session: AsyncSession) -> OverbookView:
        return await overbooking.book_instant(
            session,
            student_id=body.student_id,
            course_type=body.course_type,
            payment=body.payment,
            actor=ctx.actor,
            now=ctx.now,
            rules=ctx.rules,
        )

    return await _follow(ctx, body, op)


async def _wake(flows: Flows, class_id: int, entered_at: datetime) -> None:
    """After the answer: a waiting student's flow retries now rather than at the start. If
    Temporal cannot hear it, the flow still retries from the start on."""
    try:
        await flows.tell(
            overbooking.flow_id(class_id),
            OverbookedClassWorkflow.student_entered,
            StudentEntered(class_id=class_id, entered_at=entered_at),
        )
    except Exception as exc:
        log.warning("could not wake %s: %s", overbooking.flow_id(class_id), exc)


@router.post(
    "/classroom/classes/{class_id}/entered",
    **describe(
        Operation.enter_classroom,
        ["CLS-2", "SD-5c"],
        "The online classroom reports that the student entered an over-booked class; the "
        "answer carries the matched teacher (teacher_id, timeslot_id, matched_from). The match "
        "is one transaction in this request: a reserved pool slot at the start, else any open "
        "slot at the start; one slot goes to one student only. With no teacher free the state "
        "is `waiting`: the class's flow retries until start + 10 min, then the class fails and "
        "is refunded (state `failed`). Repeating the call answers the same teacher. After a "
        "match, the class's flow is told: its state and its TeacherId show the teacher.",
    ),
)
async def student_entered(
    class_id: IdParam, ctx: Context = caller(Operation.enter_classroom)
) -> OverbookView:
    async def op(session: AsyncSession) -> OverbookView:
        return await overbooking.enter(
            session, class_id=class_id, actor=ctx.actor, now=ctx.now, rules=ctx.rules
        )

    # The flow hears of the entry after the commit and after the answer: the classroom's
    # match waits on no Temporal call, even when Temporal is slow or away.
    entered = await ctx.run(None, OverbookView, op)
    if entered.state is OverbookState.waiting:
        ctx.flows.later(partial(_wake, ctx.flows, class_id, ctx.now))
    elif entered.teacher_id is not None and entered.matched_at == ctx.now:  # matched now
        tell = partial(ctx.flows.tell_teacher_changed, class_id, entered.teacher_id, ctx.now)
        # Before the start the flow reads the class by itself when it wakes then: the tell
        # only shows the teacher sooner, so it waits its turn behind a spike's others.
        if ctx.now < entered.start_at:
            ctx.flows.paced(tell)
        else:
            ctx.flows.later(tell)
    return entered


@router.get(
    "/overbooked-classes/{class_id}",
    **describe(
        Operation.read_class,
        ["CLS-2", "SD-5c", "SD-5d"],
        "An over-booked class as the classroom sees it: its current teacher and timeslot, its "
        "state (booked, waiting, matched, failed, finished), and the teacher swaps it had.",
    ),
)
async def read_overbooked_class(
    class_id: IdParam, ctx: Context = caller(Operation.read_class)
) -> OverbookedClassOut:
    async def op(session: AsyncSession) -> OverbookedClassOut:
        found = await overbooking.view(session, class_id)
        ctx.acts_for_class(found.student_id, found.teacher_id)
        swaps = await overbooking.swaps_of(session, class_id)
        return OverbookedClassOut(
            overbooked=found, swaps=[SwapView.model_validate(s) for s in swaps]
        )

    return await ctx.read(op)


@router.post(
    "/classes/{class_id}/swap-teacher",
    status_code=201,
    **describe(
        Operation.swap_teacher,
        ["SD-5d", "FM-7"],
        "During the class, another free teacher takes over (a reserved pool slot first, else "
        "any open slot at the start); the old teacher's slot is removed and their outcome "
        "labelled teacher_it_issue or teacher_no_show. Audited on the class and both slots. "
        "An over-booked class's flow is told: its state and its TeacherId show the new teacher.",
    ),
)
async def swap_teacher(
    class_id: IdParam, body: SwapTeacher, ctx: Context = caller(Operation.swap_teacher)
) -> SwapView:
    async def op(session: AsyncSession) -> SwapView:
        swap = await overbooking.swap_teacher(
            session,
            class_id=class_id,
            label=body.label,
            reason=body.reason,
            actor=ctx.actor,
            now=ctx.now,
            rules=ctx.rules,
        )
        if await overbooking.is_overbooked(session, class_id):
            ctx.after_commit(ctx.flows.tell_teacher_changed, class_id, swap.new_teacher_id, ctx.now)
        return SwapView.model_validate(swap)

    return await ctx.run(body, SwapView, op)


@router.post(
    "/teacher-reservations",
    status_code=201,
    **describe(
        Operation.reserve_teachers,
        ["SD-5b"],
        "Run the teacher reservation now, as its Schedule does at :28 and :58 every hour: for "
        "each half hour of the next 14 days, reserve open general slots into the over-booking "
        "pool for the over-booked classes still without a teacher × the pool factor, and give "
        "back pool slots no longer needed. Answers what the run did. Workflow id: "
        "teacher-reservation-{epoch seconds}.",
    ),
)
async def reserve_teachers(
    body: RunReservation, ctx: Context = caller(Operation.reserve_teachers)
) -> ReservationOutcome:
    log.info("teacher reservation run by %s/%s: %s", ctx.actor.channel, ctx.actor.id, body.reason)
    outcome: ReservationOutcome = await ctx.flows.run_now(
        TeacherReservationWorkflow.run,
        flow_id=f"teacher-reservation-{int(ctx.now.timestamp())}",
        search_attributes=search_attributes(
            FlowKind.teacher_reservation, channel=ctx.actor.channel.value
        ),
    )
    return outcome
