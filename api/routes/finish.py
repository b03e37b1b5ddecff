"""Finish a class with a label (FM-3), undo it (FM-4), adjust the label (LP-4, CC-7, FM-5)."""

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context, caller, describe
from api.schemas import ClassOut
from api.types import IdParam, Text
from domain.channels import Operation
from domain.words import ClassLabel
from store import finish

router = APIRouter(prefix="/v1/classes", tags=["classes"])


class Finish(BaseModel):
    label: ClassLabel


class UndoFinish(BaseModel):
    reason: Text | None = Field(None, max_length=500)


class AdjustLabel(BaseModel):
    label: ClassLabel
    reason: Text | None = Field(None, max_length=500)


@router.post(
    "/{class_id}/finish",
    **describe(
        Operation.finish_class,
        ["FM-3"],
        "Finish (结课) a booked class that has started, with its label: as_scheduled, "
        "student_no_show, teacher_no_show, student_it_issue, teacher_it_issue, system_issue. "
        "409 class_not_finishable before the start or when the class is not booked.",
    ),
)
async def finish_class(
    class_id: IdParam, body: Finish, ctx: Context = caller(Operation.finish_class)
) -> ClassOut:
    async def op(session: AsyncSession) -> ClassOut:
        done = await finish.finish(
            session, class_id=class_id, label=body.label, actor=ctx.actor, now=ctx.now
        )
        return ClassOut.model_validate(done)

    return await ctx.run(body, ClassOut, op)


@router.post(
    "/{class_id}/undo-finish",
    **describe(
        Operation.undo_finish,
        ["FM-4"],
        "Undo finish (undofinish): the finished class is booked again and its label cleared. "
        "409 class_not_finished otherwise.",
    ),
)
async def undo_finish(
    class_id: IdParam, body: UndoFinish, ctx: Context = caller(Operation.undo_finish)
) -> ClassOut:
    async def op(session: AsyncSession) -> ClassOut:
        reopened = await finish.undo_finish(
            session, class_id=class_id, reason=body.reason, actor=ctx.actor, now=ctx.now
        )
        return ClassOut.model_validate(reopened)

    return await ctx.run(body, ClassOut, op)


@router.post(
    "/{class_id}/label",
    **describe(
        Operation.adjust_label,
        ["LP-4", "CC-7", "FM-5"],
        "Adjust the label of a finished class (409 class_not_finished otherwise). CC adjusts "
        "trial classes only (403 trial_classes_only).",
    ),
)
async def adjust_label(
    class_id: IdParam, body: AdjustLabel, ctx: Context = caller(Operation.adjust_label)
) -> ClassOut:
    async def op(session: AsyncSession) -> ClassOut:
        relabelled = await finish.adjust_label(
            session,
            class_id=class_id,
            label=body.label,
            reason=body.reason,
            actor=ctx.actor,
            now=ctx.now,
        )
        return ClassOut.model_validate(relabelled)

    return await ctx.run(body, ClassOut, op)
