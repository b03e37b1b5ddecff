"""Classes: book open timeslots, cancel, read; and their audit trail."""

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api import metrics
from api.context import Context, caller, describe
from api.schemas import ClassOut
from api.types import Id, IdParam, Text, UtcDatetime
from domain.channels import Operation, check_sells
from domain.payment import Payment
from domain.words import CourseType, Product
from store import audit, classes, inventory

router = APIRouter(prefix="/v1", tags=["classes"])


class BookClass(BaseModel):
    student_id: Id
    timeslot_id: Id
    course_type: CourseType
    payment: Payment = Payment()
    lesson: Text | None = Field(None, max_length=200)
    product: Product | None = Field(
        None,
        description="the product line this booking is for (INT-1): it may take slots directed "
        "at that product; only a channel that sells the product may name it",
    )


class BookClasses(BaseModel):
    student_id: Id
    timeslot_ids: list[Id] = Field(min_length=1, max_length=50)
    course_type: CourseType
    payment: Payment = Payment()


class Booked(BaseModel):
    classes: list[ClassOut]


class CancelClass(BaseModel):
    reason: Text | None = Field(None, max_length=500)


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    entity: str
    entity_id: int
    action: str
    channel: str
    actor_id: str
    occurred_at: datetime
    details: dict[str, Any]


@router.post(
    "/classes",
    status_code=201,
    **describe(
        Operation.book_class,
        [
            "PAR-1",
            "H5-1",
            "H5-3",
            "H5-4",
            "H5-8",
            "LP-2",
            "TMK-2",
            "CC-2",
            "INT-1",
            "TCH-7",
        ],
        "Book an open timeslot for a course type, paid with credit, a coupon or energy stones. "
        "Between 1 h and 4 weeks ahead; the teacher must teach the course type. An open class "
        "is booked by seat (`POST /v1/open-classes/{open_class_id}/seats`): course type open is "
        "422 open_class_by_seat here. A special class "
        "needs the student's special course started (409 course_not_started, H5-6). Inside the "
        "exclusive-teacher priority window (SD-2, H5-8) an exclusive teacher's slots are for "
        "their own exclusive students (409 slot_reserved for others). Paid with stones, a "
        "class costs the stone price of the campaign in force at booking time (TCH-7), else the "
        "settings' price; a refund returns what was paid. A slot directed at a product line "
        "(INT-1) is taken only by a booking naming that `product` (409 slot_for_product "
        "otherwise); naming a product the channel does not sell is 403 "
        "product_not_sold_by_channel.",
    ),
)
async def book_class(body: BookClass, ctx: Context = caller(Operation.book_class)) -> ClassOut:
    ctx.acts_for_student(body.student_id)
    if body.product is not None:
        check_sells(ctx.actor.channel, body.product)
    if ctx.idempotency_key is None:
        booked = await classes.book_class_at_once(
            ctx.sessions,
            student_id=body.student_id,
            timeslot_id=body.timeslot_id,
            course_type=body.course_type,
            payment=body.payment,
            lesson=body.lesson,
            actor=ctx.actor,
            now=ctx.now,
            rules=ctx.rules,
            product=body.product,
        )
        if booked is not None:
            out = ClassOut.model_validate(booked)
            await metrics.classes_booked(ctx.actor.channel.value, [out])
            return out
        # Refused: the step-by-step path below says which rule refused (or books, if the
        # situation changed in between).

    async def op(session: AsyncSession) -> ClassOut:
        booked, hold_flow = await classes.book_class(
            session,
            student_id=body.student_id,
            timeslot_id=body.timeslot_id,
            course_type=body.course_type,
            payment=body.payment,
            lesson=body.lesson,
            actor=ctx.actor,
            now=ctx.now,
            rules=ctx.rules,
            product=body.product,
        )
        if hold_flow is not None:
            ctx.after_commit(ctx.flows.tell_hold_booked, hold_flow, booked.id, body.timeslot_id)
        out = ClassOut.model_validate(booked)
        ctx.after_commit(metrics.classes_booked, ctx.actor.channel.value, [out])
        return out

    return await ctx.run(body, ClassOut, op)


@router.post(
    "/classes/batch",
    status_code=201,
    **describe(
        Operation.book_classes_batch,
        ["LP-8"],
        "Book several timeslots of one teacher for one student: all of them, or none.",
    ),
)
async def book_classes(
    body: BookClasses, ctx: Context = caller(Operation.book_classes_batch)
) -> Booked:
    async def op(session: AsyncSession) -> Booked:
        booked = await classes.book_classes(
            session,
            student_id=body.student_id,
            timeslot_ids=body.timeslot_ids,
            course_type=body.course_type,
            payment=body.payment,
            actor=ctx.actor,
            now=ctx.now,
            rules=ctx.rules,
        )
        out = [ClassOut.model_validate(c) for c in booked]
        ctx.after_commit(metrics.classes_booked, ctx.actor.channel.value, out)
        return Booked(classes=out)

    return await ctx.run(body, Booked, op)


@router.post(
    "/classes/{class_id}/cancel",
    **describe(
        Operation.cancel_class,
        ["PAR-3", "H5-5", "LP-3", "FM-2", "TMK-6", "CC-6"],
        "Cancel a booked class before it starts. At least 24 h ahead the payment is refunded; "
        "later it is not. The timeslot opens again.",
    ),
)
async def cancel_class(
    class_id: IdParam, body: CancelClass, ctx: Context = caller(Operation.cancel_class)
) -> ClassOut:
    if ctx.idempotency_key is None:
        cancelled = await classes.cancel_class_at_once(
            ctx.sessions,
            class_id=class_id,
            owner=ctx.parents_student,
            reason=body.reason,
            actor=ctx.actor,
            now=ctx.now,
            rules=ctx.rules,
        )
        if cancelled is not None:
            out = ClassOut.model_validate(cancelled)
            await metrics.class_cancelled(ctx.actor.channel.value, out)
            return out

    async def owner(session: AsyncSession) -> int:
        return (await classes.get_class(session, class_id)).student_id

    ctx.acts_for_student(await ctx.read(owner))

    async def op(session: AsyncSession) -> ClassOut:
        cancelled = await classes.cancel_class(
            session,
            class_id=class_id,
            reason=body.reason,
            actor=ctx.actor,
            now=ctx.now,
            rules=ctx.rules,
        )
        out = ClassOut.model_validate(cancelled)
        ctx.after_commit(metrics.class_cancelled, ctx.actor.channel.value, out)
        return out

    return await ctx.run(body, ClassOut, op)


@router.get("/classes/{class_id}", **describe(Operation.read_class, [], "A class."))
async def read_class(class_id: IdParam, ctx: Context = caller(Operation.read_class)) -> ClassOut:
    async def op(session: AsyncSession) -> ClassOut:
        found = await classes.get_class(session, class_id)
        ctx.acts_for_class(found.student_id, found.teacher_id)
        return ClassOut.model_validate(found)

    return await ctx.read(op)


@router.get(
    "/students/{student_id}/classes",
    **describe(Operation.read_student, [], "A student's classes, by start."),
)
async def classes_of_student(
    student_id: IdParam,
    start_from: UtcDatetime | None = None,
    limit: int = Query(100, ge=1, le=1000),
    ctx: Context = caller(Operation.read_student),
) -> list[ClassOut]:
    ctx.acts_for_student(student_id)

    async def op(session: AsyncSession) -> list[ClassOut]:
        found = await classes.classes_of_student(session, student_id, start_from, limit)
        return [ClassOut.model_validate(c) for c in found]

    return await ctx.read(op)


@router.get(
    "/classes/{class_id}/audit",
    **describe(Operation.read_audit, [], "Every change to a class: who, channel, when, what."),
)
async def class_audit(
    class_id: IdParam, ctx: Context = caller(Operation.read_audit)
) -> list[AuditOut]:
    async def op(session: AsyncSession) -> list[AuditOut]:
        await classes.get_class(session, class_id)
        return [AuditOut.model_validate(e) for e in await audit.trail(session, "class", class_id)]

    return await ctx.read(op)


@router.get(
    "/timeslots/{timeslot_id}/audit",
    **describe(Operation.read_audit, [], "Every change to a timeslot: who, channel, when, what."),
)
async def timeslot_audit(
    timeslot_id: IdParam, ctx: Context = caller(Operation.read_audit)
) -> list[AuditOut]:
    async def op(session: AsyncSession) -> list[AuditOut]:
        await inventory.get_timeslot(session, timeslot_id)
        events = await audit.trail(session, "timeslot", timeslot_id)
        return [AuditOut.model_validate(e) for e in events]

    return await ctx.read(op)
