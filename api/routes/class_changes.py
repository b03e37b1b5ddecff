"""Staff changes to classes: force-book (FM-1), change teacher (FM-5, TMK-3, CC-3), change
student (TMK-5, CC-5)."""

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context, caller, describe
from api.schemas import ClassOut
from api.types import Id, IdParam, Text, UtcDatetime
from domain.channels import Operation
from domain.payment import Payment
from domain.words import CourseType
from store import class_changes, overbooking

router = APIRouter(prefix="/v1/classes", tags=["classes"])


class ForceBook(BaseModel):
    student_id: Id
    teacher_id: Id
    start_at: UtcDatetime
    course_type: CourseType
    payment: Payment = Payment()
    reason: Text = Field(min_length=1, max_length=500)

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, reason: str) -> str:
        if not reason.strip():
            raise ValueError("a force-booking says why")
        return reason


class ChangeTeacher(BaseModel):
    teacher_id: Id
    old_slot: Literal["reopen", "remove"]
    reason: Text | None = Field(None, max_length=500)


class ChangeStudent(BaseModel):
    student_id: Id
    payment: Payment = Payment()
    reason: Text | None = Field(None, max_length=500)


@router.post(
    "/force-book",
    status_code=201,
    **describe(
        Operation.force_book,
        ["FM-1"],
        "Force-book (强约): a slot directed at the student is made on the teacher's time (or "
        "the teacher's open general slot at that start is taken over) and booked, paid as any "
        "booking, past the booking windows (lead, horizon); on the grid and in the future. "
        "409 teacher_busy if the teacher's time is taken, 409 student_busy if the student has "
        "a class then; the reason (required) is kept in the audit trail.",
    ),
)
async def force_book(body: ForceBook, ctx: Context = caller(Operation.force_book)) -> ClassOut:
    async def op(session: AsyncSession) -> ClassOut:
        booked = await class_changes.force_book(
            session,
            student_id=body.student_id,
            teacher_id=body.teacher_id,
            start_at=body.start_at,
            course_type=body.course_type,
            payment=body.payment,
            reason=body.reason,
            actor=ctx.actor,
            now=ctx.now,
            rules=ctx.rules,
        )
        return ClassOut.model_validate(booked)

    return await ctx.run(body, ClassOut, op)


@router.post(
    "/{class_id}/change-teacher",
    **describe(
        Operation.change_teacher,
        ["FM-5", "TMK-3", "CC-3"],
        "Before the start, move a booked class to another teacher at the same start, on a slot "
        "directed at its student (made, or the teacher's open general slot taken over); the old "
        "slot opens again as general inventory (`old_slot: reopen`) or is removed (`remove`). "
        "The payment is untouched. The teacher must teach the course type (409 teacher_busy if "
        "not free); TMK and CC change trial classes only (403 trial_classes_only); 409 "
        "class_not_booked, class_started. An over-booked class's flow is told, so that its "
        "state and its TeacherId follow.",
    ),
)
async def change_teacher(
    class_id: IdParam, body: ChangeTeacher, ctx: Context = caller(Operation.change_teacher)
) -> ClassOut:
    async def op(session: AsyncSession) -> ClassOut:
        changed = await class_changes.change_teacher(
            session,
            class_id=class_id,
            teacher_id=body.teacher_id,
            old_slot=body.old_slot,
            reason=body.reason,
            actor=ctx.actor,
            now=ctx.now,
        )
        if changed.teacher_id is not None and await overbooking.is_overbooked(session, class_id):
            ctx.after_commit(ctx.flows.tell_teacher_changed, class_id, changed.teacher_id, ctx.now)
        return ClassOut.model_validate(changed)

    return await ctx.run(body, ClassOut, op)


@router.post(
    "/{class_id}/change-student",
    **describe(
        Operation.change_student,
        ["TMK-5", "CC-5"],
        "Another student takes a booked class before it starts: the first is refunded in full "
        "whatever the time to the start, the second pays (credit, coupon or stones of the "
        "class's course type). 409 student_busy, insufficient_balance, class_not_booked, "
        "class_started, open_class_seat (a seat of an open class: cancel it, the other "
        "student takes a seat).",
    ),
)
async def change_student(
    class_id: IdParam, body: ChangeStudent, ctx: Context = caller(Operation.change_student)
) -> ClassOut:
    async def op(session: AsyncSession) -> ClassOut:
        changed = await class_changes.change_student(
            session,
            class_id=class_id,
            student_id=body.student_id,
            payment=body.payment,
            reason=body.reason,
            actor=ctx.actor,
            now=ctx.now,
            rules=ctx.rules,
        )
        return ClassOut.model_validate(changed)

    return await ctx.run(body, ClassOut, op)
