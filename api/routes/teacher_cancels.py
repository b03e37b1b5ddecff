"""Teacher cancels a class and holds other times for the student (TCH-5). Each hold is a
workflow, teacher-cancel-{class_id}; fireman may extend or end it."""

from typing import TypeVar

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.workflow import UpdateMethodMultiParam

from activities.teacher_cancel import hold_view
from api.context import Context, FlowCall, caller, describe
from api.types import IdParam, Text, UtcDatetime
from domain.channels import Operation
from domain.errors import ClassNotCancellable, HoldClosed
from domain.teacher_cancel import (
    Ending,
    Extension,
    HoldView,
    TeacherCancelInput,
)
from domain.words import HoldState
from store import classes, holds
from workflows.common import FlowKind, search_attributes
from workflows.teacher_cancel import TeacherCancelHoldWorkflow

router = APIRouter(prefix="/v1", tags=["teacher cancels"])
Change = TypeVar("Change", Extension, Ending)


class TeacherCancel(BaseModel):
    offered_start_at: list[UtcDatetime] = Field(
        default_factory=list, max_length=10, description="other times held for the student"
    )
    reason: Text | None = Field(None, max_length=500)


class Extend(BaseModel):
    until: UtcDatetime


@router.post(
    "/classes/{class_id}/teacher-cancel",
    status_code=201,
    **describe(
        Operation.teacher_cancel,
        ["TCH-5"],
        "The class's teacher cancels it: the student is refunded in full and each offered time "
        "becomes a slot held for that student for 24 h. Booking one removes the others; at the "
        "end the timer removes what is left. Workflow id: teacher-cancel-{class_id}.",
    ),
)
async def teacher_cancel(
    class_id: IdParam, body: TeacherCancel, ctx: Context = caller(Operation.teacher_cancel)
) -> HoldView:
    async def read(session: AsyncSession) -> tuple[int | None, int]:
        found = await classes.get_class(session, class_id)
        ctx.acts_for_teacher(found.teacher_id)
        return found.teacher_id, found.student_id

    async def cancellable(session: AsyncSession) -> int:
        holds.check_teacher_cancels(await classes.get_class(session, class_id))
        return class_id

    teacher_id, student_id = await ctx.read(read)
    if teacher_id is None:
        raise ClassNotCancellable("the class has no teacher", class_id=class_id)
    cancel = TeacherCancelInput(
        class_id=class_id,
        teacher_id=teacher_id,
        student_id=student_id,
        offered=body.offered_start_at,
        reason=body.reason,
        actor=ctx.actor,
    )

    async def call(flow: FlowCall) -> HoldView:
        return await ctx.flows.start_and_ask(
            TeacherCancelHoldWorkflow.run,
            cancel,
            flow_id=holds.flow_id(class_id),
            update=TeacherCancelHoldWorkflow.opened,
            update_id=flow.update_id,
            search_attributes=search_attributes(
                FlowKind.teacher_cancel,
                channel=ctx.actor.channel.value,
                student_id=student_id,
                teacher_ids=[teacher_id],
            ),
        )

    return await ctx.ask_flow(body, HoldView, call, reserve=cancellable)


async def _change(
    ctx: Context,
    class_id: int,
    body: BaseModel | None,
    update: UpdateMethodMultiParam[[TeacherCancelHoldWorkflow, Change], HoldView],
    change: Change,
) -> HoldView:
    """Ask the hold's flow. A new change to a hold that is over is refused from the database
    (its flow may be gone); a retry with the same Idempotency-Key gets the first answer."""

    async def holding(session: AsyncSession) -> int:
        state = (await holds.get_hold(session, class_id)).state
        if state is not HoldState.holding:
            raise HoldClosed("the hold is over", class_id=class_id, state=state.value)
        return class_id

    return await ctx.ask_running_flow(
        body,
        HoldView,
        holds.flow_id(class_id),
        update,
        change,
        still_open=holding,
        closed=HoldClosed("the hold is over", class_id=class_id),
    )


@router.get(
    "/teacher-cancels/{class_id}",
    **describe(Operation.read_class, ["TCH-5"], "A teacher cancellation and its hold."),
)
async def read_hold(class_id: IdParam, ctx: Context = caller(Operation.read_class)) -> HoldView:
    async def read(session: AsyncSession) -> HoldView:
        return await hold_view(session, await holds.get_hold(session, class_id))

    view = await ctx.read(read)
    ctx.acts_for_class(view.student_id, view.teacher_id)
    return view


@router.post(
    "/teacher-cancels/{class_id}/extend",
    **describe(
        Operation.manage_hold,
        ["TCH-5"],
        "Fireman keeps the offered slots held longer: `until` is after now, at most the start "
        "of the last offered slot and 7 days after the teacher's cancel (a setting), else 422 "
        "hold_until_out_of_range. No slot is held past its own start.",
    ),
)
async def extend_hold(
    class_id: IdParam, body: Extend, ctx: Context = caller(Operation.manage_hold)
) -> HoldView:
    extension = Extension(until=body.until, actor=ctx.actor)
    return await _change(ctx, class_id, body, TeacherCancelHoldWorkflow.extend, extension)


@router.post(
    "/teacher-cancels/{class_id}/end",
    **describe(Operation.manage_hold, ["TCH-5"], "Fireman ends the hold now."),
)
async def end_hold(class_id: IdParam, ctx: Context = caller(Operation.manage_hold)) -> HoldView:
    ending = Ending(actor=ctx.actor)
    return await _change(ctx, class_id, None, TeacherCancelHoldWorkflow.end, ending)
