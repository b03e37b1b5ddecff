"""SD-4: the LP's make-up booking (补约) with the student's exclusive teacher."""

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context, caller, describe
from api.schemas import ClassOut
from api.types import Id, IdParam, Text
from domain.channels import Operation
from domain.payment import Payment
from domain.words import CourseType
from store import make_up

router = APIRouter(prefix="/v1/students", tags=["weekly booking"])


class ExclusiveMakeUp(BaseModel):
    timeslot_id: Id
    course_type: CourseType = CourseType.major
    payment: Payment = Payment()
    reason: Text | None = Field(None, max_length=500)


@router.post(
    "/{student_id}/exclusive-make-up",
    status_code=201,
    **describe(
        Operation.make_up_booking,
        ["SD-4"],
        "LP make-up booking (补约) with the student's exclusive teacher, on one of that "
        "teacher's open slots, even inside the exclusive priority window. 409 "
        "no_exclusive_teacher, or not_exclusive_teachers_slot for another teacher's slot.",
    ),
)
async def exclusive_make_up(
    student_id: IdParam, body: ExclusiveMakeUp, ctx: Context = caller(Operation.make_up_booking)
) -> ClassOut:
    async def op(session: AsyncSession) -> ClassOut:
        booked, hold_flow = await make_up.with_exclusive_teacher(
            session,
            student_id=student_id,
            timeslot_id=body.timeslot_id,
            course_type=body.course_type,
            payment=body.payment,
            reason=body.reason,
            actor=ctx.actor,
            now=ctx.now,
            rules=ctx.rules,
        )
        if hold_flow is not None:
            ctx.after_commit(ctx.flows.tell_hold_booked, hold_flow, booked.id, body.timeslot_id)
        return ClassOut.model_validate(booked)

    return await ctx.run(body, ClassOut, op)
