"""A class's history (every change, in order) and a teacher's penalties (TCH-5, labels)."""

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context, caller, describe
from api.routes.classes import AuditOut
from api.types import IdParam
from domain.channels import Operation
from domain.words import PenaltyKind
from store import audit, classes, penalties

router = APIRouter(prefix="/v1", tags=["history"])


class PenaltyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    teacher_id: int
    class_id: int
    kind: PenaltyKind
    reason: str | None
    channel: str
    actor_id: str
    created_at: datetime
    revoked_at: datetime | None
    revoked_channel: str | None
    revoked_actor_id: str | None


@router.get(
    "/classes/{class_id}/history",
    **describe(
        Operation.read_audit,
        ["FM-3", "FM-4", "LP-4", "TCH-5"],
        "A class's history: every change to it, oldest first, one row each (booked, "
        "cancelled, finished, label_adjusted, finish_undone, teacher_swapped, …) with its "
        "channel, actor, time and details: the reason, the labels, and what money and "
        "penalties it moved (`money`: refunded or charged; `penalty`, `penalty_revoked`). "
        "The rows of the audit trail; `GET /v1/classes/{class_id}/audit` is the same list.",
    ),
)
async def class_history(
    class_id: IdParam, ctx: Context = caller(Operation.read_audit)
) -> list[AuditOut]:
    async def op(session: AsyncSession) -> list[AuditOut]:
        await classes.get_class(session, class_id)
        return [AuditOut.model_validate(e) for e in await audit.trail(session, "class", class_id)]

    return await ctx.read(op)


@router.get(
    "/teachers/{teacher_id}/penalties",
    **describe(
        Operation.read_teacher_penalties,
        ["TCH-5"],
        "A teacher's penalties, oldest first: `teacher_cancel` (TCH-5), `teacher_no_show` and "
        "`teacher_it_issue` (a class finished with that label). A penalty that a later label "
        "or an undo-finish took back stays listed, with `revoked_at`. The teacher portal reads "
        "its own teacher's only.",
    ),
)
async def teacher_penalties(
    teacher_id: IdParam, ctx: Context = caller(Operation.read_teacher_penalties)
) -> list[PenaltyOut]:
    ctx.acts_for_teacher(teacher_id)

    async def op(session: AsyncSession) -> list[PenaltyOut]:
        found = await penalties.of_teacher(session, teacher_id)
        return [PenaltyOut.model_validate(p) for p in found]

    return await ctx.read(op)
