"""Fake cancel (TMK-4, CC-4): the student is taken off the class and refunded in full, and the
slot stays held for the channel that cancelled for 30 minutes (never past the class's start).
Each hold is a workflow, fake-cancel-{class_id}."""

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context, FlowCall, caller, describe
from api.types import IdParam, Text
from domain.channels import Operation
from domain.errors import ClassNotCancellable, ClassStarted
from domain.fake_cancel import FakeCancelInput, FakeCancelView
from domain.words import ClassState
from store import classes, fake_cancels
from workflows.common import FlowKind, search_attributes
from workflows.fake_cancel import FakeCancelWorkflow

router = APIRouter(prefix="/v1", tags=["fake cancels"])


class FakeCancel(BaseModel):
    reason: Text | None = Field(None, max_length=500)


@router.post(
    "/classes/{class_id}/fake-cancel",
    status_code=201,
    **describe(
        Operation.fake_cancel,
        ["TMK-4", "CC-4"],
        "The channel takes the student off a booked class, refunded in full; the teacher's "
        "slot (`timeslot_id`) stays held for this channel until 30 minutes later or the class's "
        "start, whichever comes first: only this channel may book it (POST /v1/classes, any "
        "student), which ends the hold. Then the timer gives it back to general inventory. "
        "409 class_not_cancellable (not booked on a teacher's slot), 409 class_started. "
        "Workflow id: fake-cancel-{class_id}.",
    ),
)
async def fake_cancel(
    class_id: IdParam, body: FakeCancel, ctx: Context = caller(Operation.fake_cancel)
) -> FakeCancelView:
    async def read(session: AsyncSession) -> tuple[int | None, int]:
        found = await classes.get_class(session, class_id)
        return found.teacher_id, found.student_id

    async def cancellable(session: AsyncSession) -> int:
        found = await classes.get_class(session, class_id)
        if found.state is not ClassState.booked or found.timeslot_id is None:
            raise ClassNotCancellable(
                "the class is not booked on a teacher's timeslot",
                class_id=class_id,
                state=found.state.value,
            )
        if found.start_at <= ctx.now:
            raise ClassStarted("the class has already started", class_id=class_id)
        return class_id

    teacher_id, student_id = await ctx.read(read)
    if teacher_id is None:
        raise ClassNotCancellable("the class has no teacher", class_id=class_id)
    cancel = FakeCancelInput(
        class_id=class_id,
        teacher_id=teacher_id,
        student_id=student_id,
        reason=body.reason,
        actor=ctx.actor,
    )

    async def call(flow: FlowCall) -> FakeCancelView:
        return await ctx.flows.start_and_ask(
            FakeCancelWorkflow.run,
            cancel,
            flow_id=fake_cancels.flow_id(class_id),
            update=FakeCancelWorkflow.opened,
            update_id=flow.update_id,
            search_attributes=search_attributes(
                FlowKind.fake_cancel,
                channel=ctx.actor.channel.value,
                student_id=student_id,
                teacher_ids=[teacher_id],
            ),
        )

    return await ctx.ask_flow(body, FakeCancelView, call, reserve=cancellable)
