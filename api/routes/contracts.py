"""Dual-excellence contracts (双优合约): the LP creates one (W1 and W2 booked), each teacher
agrees to or declines each later week offered to them, the LP reads every week's state,
terminates or books a make-up. Each contract is a workflow, contract-{id}."""

from collections.abc import Awaitable, Callable
from datetime import date
from typing import TypeVar

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.workflow import UpdateMethodMultiParam

from api.context import Context, FlowCall, caller, describe
from api.schemas import ClassOut
from api.types import Id, IdParam, Text, UtcDatetime
from domain.channels import Channel, Operation
from domain.contract import (
    Answer,
    ContractClosed,
    ContractInput,
    ContractState,
    ContractView,
    Role,
    TeacherWeek,
    Termination,
    WeekAnswer,
    WeekBooking,
    WeeklyTime,
)
from domain.errors import ForbiddenActor
from domain.words import CourseType
from store import contracts
from workflows.common import FlowKind, search_attributes
from workflows.contract import ContractWorkflow

router = APIRouter(prefix="/v1", tags=["contracts"])
Said = TypeVar("Said", Answer, Termination)


class NewContract(BaseModel):
    student_id: Id
    chinese: WeeklyTime
    foreign: WeeklyTime
    first_week: date = Field(description="the Monday (Asia/Shanghai) of the first week")
    weeks: int | None = Field(None, ge=1, le=520, description="omit for open-ended")
    course_type: CourseType = CourseType.major


class Reason(BaseModel):
    reason: Text | None = Field(None, max_length=500)


class MakeUpBooking(BaseModel):
    role: Role
    start_at: UtcDatetime


class ContractOut(BaseModel):
    contract: ContractView
    weeks: list[WeekBooking]


@router.post(
    "/contracts",
    status_code=201,
    **describe(
        Operation.propose_contract,
        ["TCH-6", "SD-7"],
        "Create a contract: a student with a Chinese and a foreign teacher, each at a weekly "
        "local time (Asia/Shanghai), from first_week for `weeks` weeks or open-ended. It is "
        "active at once, and W1 and W2 are booked with both teachers (each paid with a "
        "credit; a role that cannot be booked keeps its reason: read the weeks with GET "
        "/v1/contracts/{id}). Each later week is offered to its teachers two weeks ahead "
        "(see /v1/teachers/{teacher_id}/contract-weeks). This week, already begun, is refused "
        "with 422 first_week_started: next week is the earliest. Workflow id: contract-{id}.",
    ),
)
async def propose(
    body: NewContract, ctx: Context = caller(Operation.propose_contract)
) -> ContractView:
    async def reserve(session: AsyncSession) -> int:
        await contracts.check_proposal(
            session,
            student_id=body.student_id,
            chinese=body.chinese,
            foreign=body.foreign,
            first_week=body.first_week,
            weeks=body.weeks,
            course_type=body.course_type,
            now=ctx.now,
            rules=ctx.rules,
        )
        return await contracts.next_contract_id(session)

    async def call(flow: FlowCall) -> ContractView:
        flow_input = ContractInput(
            contract_id=flow.reserved,
            student_id=body.student_id,
            chinese=body.chinese,
            foreign=body.foreign,
            first_week=body.first_week,
            weeks=body.weeks,
            course_type=body.course_type,
            actor=ctx.actor,
        )
        return await ctx.flows.start_and_ask(
            ContractWorkflow.run,
            flow_input,
            flow_id=contracts.flow_id(flow.reserved),
            update=ContractWorkflow.proposed,
            update_id=flow.update_id,
            search_attributes=search_attributes(
                FlowKind.contract,
                channel=ctx.actor.channel.value,
                student_id=body.student_id,
                teacher_ids=[body.chinese.teacher_id, body.foreign.teacher_id],
            ),
        )

    return await ctx.ask_flow(body, ContractView, call, reserve=reserve)


async def _contract(ctx: Context, contract_id: int) -> ContractView:
    async def read(session: AsyncSession) -> ContractView:
        return contracts.view_of(await contracts.get_contract(session, contract_id), ctx.rules)

    return await ctx.read(read)


def _in_state(
    contract_id: int, states: tuple[ContractState, ...], message: str
) -> Callable[[AsyncSession], Awaitable[int]]:
    """The check of a new call on the contract's flow (a retry with the same Idempotency-Key
    skips it and gets the first answer from the flow)."""

    async def check(session: AsyncSession) -> int:
        state = (await contracts.get_contract(session, contract_id)).state
        if state not in states:
            raise ContractClosed(message, id=contract_id, state=state.value)
        return contract_id

    return check


async def _ask(
    ctx: Context,
    contract_id: int,
    body: Reason,
    update: UpdateMethodMultiParam[[ContractWorkflow, Said], ContractView],
    said: Said,
    check: Callable[[AsyncSession], Awaitable[int]],
) -> ContractView:
    return await ctx.ask_running_flow(
        body,
        ContractView,
        contracts.flow_id(contract_id),
        update,
        said,
        still_open=check,
        closed=ContractClosed("the contract is closed", id=contract_id),
    )


def _teacher_of(ctx: Context) -> int:
    """The teacher the portal is logged in as (0: nobody, who teaches nothing); answering is
    the teacher portal's alone."""
    teacher_id = ctx.portals_teacher
    assert teacher_id is not None
    return teacher_id


async def _answer(ctx: Context, contract_id: int, body: Reason, *, agree: bool) -> ContractView:
    view = await _contract(ctx, contract_id)
    teacher_id = _teacher_of(ctx)
    if teacher_id not in (view.chinese_teacher_id, view.foreign_teacher_id):
        raise ForbiddenActor(
            "only the contract's two teachers answer it",
            actor_id=ctx.actor.id,
            contract_id=contract_id,
        )
    answer = Answer(actor=ctx.actor, teacher_id=teacher_id, reason=body.reason)
    update = ContractWorkflow.agree if agree else ContractWorkflow.decline
    proposed = _in_state(
        contract_id, (ContractState.proposed,), "the contract is no longer waiting for answers"
    )
    return await _ask(ctx, contract_id, body, update, answer, proposed)


@router.post(
    "/contracts/{contract_id}/agree",
    **describe(
        Operation.answer_contract,
        ["TCH-6"],
        "Contracts proposed before weekly answers only (state `proposed`): one of the "
        "contract's teachers agrees to the whole contract. With both agreed, weeks W1 and W2 "
        "are booked with both teachers at once (the answer shows the contract active).",
    ),
)
async def agree(
    contract_id: IdParam, body: Reason, ctx: Context = caller(Operation.answer_contract)
) -> ContractView:
    return await _answer(ctx, contract_id, body, agree=True)


@router.post(
    "/contracts/{contract_id}/decline",
    **describe(
        Operation.answer_contract,
        ["TCH-6"],
        "Contracts proposed before weekly answers only (state `proposed`): one of the "
        "contract's teachers declines the whole contract: it ends.",
    ),
)
async def decline(
    contract_id: IdParam, body: Reason, ctx: Context = caller(Operation.answer_contract)
) -> ContractView:
    return await _answer(ctx, contract_id, body, agree=False)


@router.post(
    "/contracts/{contract_id}/terminate",
    **describe(
        Operation.terminate_contract,
        ["TCH-6", "SD-7"],
        "The LP ends the contract: its future classes are cancelled and refunded in full, the "
        "weeks awaiting a teacher's answer withdrawn, its open slots removed.",
    ),
)
async def terminate(
    contract_id: IdParam, body: Reason, ctx: Context = caller(Operation.terminate_contract)
) -> ContractView:
    termination = Termination(actor=ctx.actor, reason=body.reason)
    open_ = _in_state(
        contract_id,
        (ContractState.proposed, ContractState.active),
        "the contract is already closed",
    )
    return await _ask(ctx, contract_id, body, ContractWorkflow.terminate, termination, open_)


@router.post(
    "/contracts/{contract_id}/make-up",
    status_code=201,
    **describe(
        Operation.make_up_booking,
        ["SD-4"],
        "LP make-up booking (补约): a replacement class with the contract's Chinese or foreign "
        "teacher at another time, on a contract-directed slot, paid with a credit.",
    ),
)
async def make_up(
    contract_id: IdParam, body: MakeUpBooking, ctx: Context = caller(Operation.make_up_booking)
) -> ClassOut:
    async def op(session: AsyncSession) -> ClassOut:
        booked = await contracts.make_up(
            session,
            contract_id=contract_id,
            role=body.role,
            start_at=body.start_at,
            actor=ctx.actor,
            now=ctx.now,
            rules=ctx.rules,
        )
        return ClassOut.model_validate(booked)

    return await ctx.run(body, ClassOut, op)


@router.get(
    "/contracts/{contract_id}",
    **describe(
        Operation.read_contract,
        ["TCH-6", "SD-7"],
        "A contract and every week per teacher: its state (`awaiting` the teacher's answer "
        "until answer_by, `booked` with its class, `declined`, `expired`, `unbooked` or "
        "`withdrawn`, with the reason), the offered slot and when the teacher answered.",
    ),
)
async def read_contract(
    contract_id: IdParam, ctx: Context = caller(Operation.read_contract)
) -> ContractOut:
    async def read(session: AsyncSession) -> ContractOut:
        row = await contracts.get_contract(session, contract_id)
        return ContractOut(
            contract=contracts.view_of(row, ctx.rules),
            weeks=await contracts.weeks_of(session, contract_id),
        )

    out = await ctx.read(read)
    ctx.acts_for_student(out.contract.student_id)
    if ctx.actor.channel is Channel.teacher:
        role_teachers = (out.contract.chinese_teacher_id, out.contract.foreign_teacher_id)
        if ctx.actor.id not in {str(t) for t in role_teachers}:
            raise ForbiddenActor("a teacher reads their own contracts", actor_id=ctx.actor.id)
    return out


async def _answer_week(
    ctx: Context, contract_id: int, week: date, body: Reason, *, agree: bool
) -> WeekBooking:
    answer = WeekAnswer(
        actor=ctx.actor, teacher_id=_teacher_of(ctx), week=week, agree=agree, reason=body.reason
    )

    async def awaiting(session: AsyncSession) -> int:
        await contracts.check_week_answer(
            session, contract_id=contract_id, answer=answer, now=ctx.now
        )
        return contract_id

    return await ctx.ask_running_flow(
        body,
        WeekBooking,
        contracts.flow_id(contract_id),
        ContractWorkflow.answer_week,
        answer,
        still_open=awaiting,
        closed=ContractClosed("the contract is closed", id=contract_id),
    )


@router.post(
    "/contracts/{contract_id}/weeks/{week}/agree",
    **describe(
        Operation.answer_contract,
        ["TCH-6", "SD-7"],
        "The teacher agrees to their class of one contract week (`week`: its Monday) offered "
        "to them: the class is booked on the week's contract-directed slot, paid with a "
        "credit. If it cannot be booked (the student busy, no credit), the week is `unbooked` "
        "with that reason and the slot goes to general inventory. A week of a contract the "
        "teacher does not teach is 409 contract_week_not_theirs; one no longer awaiting "
        "their answer (answered, expired, withdrawn, or past answer_by) is 409 "
        "contract_week_answered.",
    ),
)
async def agree_week(
    contract_id: IdParam,
    week: date,
    body: Reason,
    ctx: Context = caller(Operation.answer_contract),
) -> WeekBooking:
    return await _answer_week(ctx, contract_id, week, body, agree=True)


@router.post(
    "/contracts/{contract_id}/weeks/{week}/decline",
    **describe(
        Operation.answer_contract,
        ["TCH-6", "SD-7"],
        "The teacher declines their class of one contract week: the week is `declined` with "
        "the reason given, the slot goes to general inventory, and the contract goes on. "
        "Refusals as for agree.",
    ),
)
async def decline_week(
    contract_id: IdParam,
    week: date,
    body: Reason,
    ctx: Context = caller(Operation.answer_contract),
) -> WeekBooking:
    return await _answer_week(ctx, contract_id, week, body, agree=False)


@router.get(
    "/teachers/{teacher_id}/contract-weeks",
    **describe(
        Operation.read_contract_weeks,
        ["TCH-6", "SD-7"],
        "The contract weeks awaiting this teacher's answer, soonest deadline first: each "
        "class's start in UTC and in the teacher's time zone, the week before's local start, "
        "and local_time_moved when the teacher's clocks changed in between (the student's "
        "time stays put).",
    ),
)
async def awaiting_weeks(
    teacher_id: IdParam, ctx: Context = caller(Operation.read_contract_weeks)
) -> list[TeacherWeek]:
    ctx.acts_for_teacher(teacher_id)

    async def read(session: AsyncSession) -> list[TeacherWeek]:
        return await contracts.weeks_awaiting(session, teacher_id, ctx.rules)

    return await ctx.read(read)
