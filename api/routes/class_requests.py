"""Class requests (求课): ask a teacher for a time; the teacher approves or rejects; the
requester may withdraw. Each request is a workflow, class-request-{id}."""

import asyncio
from typing import Any, TypeVar

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.workflow import UpdateMethodMultiParam

from api import flows
from api.context import Context, caller, describe
from api.errors import error_body
from api.schemas import NewRequest
from api.types import IdParam, Text
from domain.channels import Channel, Operation
from domain.class_request import Approval, Rejection, RequestView
from domain.errors import FilterRequired, ForbiddenActor, RequestClosed
from domain.words import RequestState
from store import class_requests
from workflows.class_request import ClassRequestWorkflow

router = APIRouter(prefix="/v1/class-requests", tags=["class requests"])
Answer = TypeVar("Answer", Approval, Rejection)


class NewRequests(BaseModel):
    requests: list[NewRequest] = Field(min_length=1, max_length=100)


class BatchItem(BaseModel):
    request: RequestView | None = None
    error: dict[str, Any] | None = None


class BatchOutcome(BaseModel):
    results: list[BatchItem]


class Approve(BaseModel):
    keep_slot: bool = Field(False, description="keep the slot as inventory if the student cancels")


class Reason(BaseModel):
    reason: Text | None = Field(None, max_length=500)


@router.post(
    "",
    status_code=201,
    **describe(
        Operation.request_class,
        ["LP-6", "TCH-3", "TCH-4"],
        "Ask a teacher for a time they have not opened (at least 3 h ahead). The payment is "
        "held at once; the teacher answers before min(created + 24 h, start - 2 h), else the "
        "request expires and the hold returns. Workflow id: class-request-{id}.",
    ),
)
async def request_class(
    body: NewRequest, ctx: Context = caller(Operation.request_class)
) -> RequestView:
    ctx.acts_for_student(body.student_id)
    return await flows.request_class(ctx, body)


@router.post(
    "/batch",
    status_code=200,
    **describe(
        Operation.request_classes_batch,
        ["LP-6", "LP-7"],
        "Many (student, teacher, time) requests in one call, each its own workflow; the "
        "response lists each outcome in order: the request, or the error it met. With an "
        "Idempotency-Key, each item is idempotent on its own (the key and its position).",
    ),
)
async def request_classes(
    body: NewRequests, ctx: Context = caller(Operation.request_classes_batch)
) -> BatchOutcome:
    gate = asyncio.Semaphore(8)

    async def one(n: int, item: NewRequest) -> BatchItem:
        async with gate:
            try:
                return BatchItem(request=await flows.request_class(ctx, item, key_suffix=f"#{n}"))
            except Exception as exc:
                return BatchItem(error=error_body(exc))

    return BatchOutcome(
        results=list(await asyncio.gather(*(one(n, i) for n, i in enumerate(body.requests))))
    )


async def _answer(
    ctx: Context,
    request_id: int,
    body: BaseModel,
    update: UpdateMethodMultiParam[[ClassRequestWorkflow, Answer], RequestView],
    answer: Answer,
) -> RequestView:
    """Ask the request's flow. A new answer to a request that is no longer pending is refused
    from the database (its flow may be over); a retry with the same Idempotency-Key gets the
    first answer from the flow itself, even after the request closed."""

    async def read(session: AsyncSession) -> RequestView:
        return RequestView.model_validate(await class_requests.get_request(session, request_id))

    view = await ctx.read(read)
    ctx.acts_for_class(view.student_id, view.teacher_id)

    async def pending(session: AsyncSession) -> int:
        state = (await class_requests.get_request(session, request_id)).state
        if state is not RequestState.pending:
            raise RequestClosed(
                "the request is no longer pending", request_id=request_id, state=state.value
            )
        return request_id

    return await ctx.ask_running_flow(
        body,
        RequestView,
        class_requests.flow_id(request_id),
        update,
        answer,
        still_open=pending,
        closed=RequestClosed("the request is no longer pending", request_id=request_id),
    )


@router.post(
    "/{request_id}/approve",
    **describe(
        Operation.answer_request,
        ["TCH-3"],
        "The requested teacher approves: the timeslot is created and the class booked in one "
        "step, paid by the hold. keep_slot: if the student cancels, the slot stays as general "
        "inventory instead of being removed.",
    ),
)
async def approve(
    request_id: IdParam, body: Approve, ctx: Context = caller(Operation.answer_request)
) -> RequestView:
    approval = Approval(actor=ctx.actor, keep_slot=body.keep_slot)
    return await _answer(ctx, request_id, body, ClassRequestWorkflow.approve, approval)


@router.post(
    "/{request_id}/reject",
    **describe(
        Operation.answer_request, ["TCH-4"], "The requested teacher rejects; the hold returns."
    ),
)
async def reject(
    request_id: IdParam, body: Reason, ctx: Context = caller(Operation.answer_request)
) -> RequestView:
    rejection = Rejection(actor=ctx.actor, reason=body.reason)
    return await _answer(ctx, request_id, body, ClassRequestWorkflow.reject, rejection)


@router.post(
    "/{request_id}/withdraw",
    **describe(
        Operation.withdraw_request,
        ["LP-6"],
        "The requester withdraws a pending request; the hold returns.",
    ),
)
async def withdraw(
    request_id: IdParam, body: Reason, ctx: Context = caller(Operation.withdraw_request)
) -> RequestView:
    withdrawal = Rejection(actor=ctx.actor, reason=body.reason)
    return await _answer(ctx, request_id, body, ClassRequestWorkflow.withdraw, withdrawal)


@router.get("/{request_id}", **describe(Operation.read_requests, ["LP-6"], "One class request."))
async def read_request(
    request_id: IdParam, ctx: Context = caller(Operation.read_requests)
) -> RequestView:
    async def read(session: AsyncSession) -> RequestView:
        return RequestView.model_validate(await class_requests.get_request(session, request_id))

    view = await ctx.read(read)
    ctx.acts_for_class(view.student_id, view.teacher_id)
    return view


@router.get(
    "",
    **describe(
        Operation.read_requests,
        ["TCH-3", "TCH-4", "LP-6"],
        "Class requests by teacher or by student, optionally by state (e.g. pending). A "
        "teacher sees their own, a parent their student's.",
    ),
)
async def list_requests(
    teacher_id: IdParam | None = None,
    student_id: IdParam | None = None,
    state: RequestState | None = None,
    limit: int = Query(100, ge=1, le=1000),
    ctx: Context = caller(Operation.read_requests),
) -> list[RequestView]:
    if teacher_id is None and student_id is None:
        raise FilterRequired(
            "name a teacher_id or a student_id", fields=["teacher_id", "student_id"]
        )
    if ctx.actor.channel is Channel.teacher and teacher_id is None:
        raise ForbiddenActor("a teacher lists their own requests", actor_id=ctx.actor.id)
    if teacher_id is not None:
        ctx.acts_for_teacher(teacher_id)
    if student_id is not None:
        ctx.acts_for_student(student_id)
    elif ctx.actor.channel in (Channel.parent_pc, Channel.parent_h5):
        raise ForbiddenActor("a parent lists their own student's requests", actor_id=ctx.actor.id)

    async def read(session: AsyncSession) -> list[RequestView]:
        found = await class_requests.requests_of(
            session, teacher_id=teacher_id, student_id=student_id, state=state, limit=limit
        )
        return [RequestView.model_validate(r) for r in found]

    return await ctx.read(read)
