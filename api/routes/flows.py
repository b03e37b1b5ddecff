"""Any flow's state by its workflow id, for staff who would rather not open the Web UI."""

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.context import Context, caller, describe
from domain.channels import Operation

router = APIRouter(prefix="/v1/flows", tags=["flows"])


class FlowOut(BaseModel):
    flow_id: str
    status: str | None
    state: Any


@router.get(
    "/{flow_id}",
    **describe(
        Operation.read_flow,
        [],
        "A workflow's status and its `state` query, by workflow id (e.g. class-request-7, "
        "teacher-cancel-42): the same the Web UI shows.",
    ),
)
async def read_flow(flow_id: str, ctx: Context = caller(Operation.read_flow)) -> FlowOut:
    status, state = await ctx.flows.describe(flow_id)
    return FlowOut(flow_id=flow_id, status=status.name if status else None, state=state)
