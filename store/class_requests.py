"""Class requests (求课, TCH-3, TCH-4, LP-6): a student asks a teacher for a time the teacher
has not opened. The payment is held from the start; approval books it in one transaction,
anything else gives the hold back."""

from datetime import datetime

from sqlalchemy import func, select, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor
from domain.errors import RequestClosed, RequestExpired, StudentBusy
from domain.payment import Payment
from domain.rules import (
    BookingRules,
    check_can_request,
    check_student_takes,
    check_teaches,
    request_deadline,
)
from domain.words import ClassState, CourseType, Direction, RequestState, TimeslotState
from store import audit, classes, courses, inventory, ledger
from store.db import get_or_404
from store.models import Class, ClassRequest
from store.people import get_student, get_teacher


def flow_id(request_id: int) -> str:
    return f"class-request-{request_id}"


async def next_request_id(session: AsyncSession) -> int:
    """Ids come first so that the workflow id (class-request-{id}) exists before the request."""
    return int(
        await session.scalar(
            select(func.nextval(func.pg_get_serial_sequence("class_requests", "id")))
        )
        or 0
    )


async def check_request(
    session: AsyncSession,
    *,
    student_id: int,
    teacher_id: int,
    start_at: datetime,
    course_type: CourseType,
    now: datetime,
    rules: BookingRules,
) -> None:
    """What can be refused before a flow starts: unknown people, time rules, course type."""
    student = await get_student(session, student_id)
    teacher = await get_teacher(session, teacher_id)
    check_can_request(start_at, now, rules)
    check_student_takes(student.id, student.level, course_type)
    await courses.check_started(session, student.id, course_type)
    check_teaches(teacher.id, teacher.kind, teacher.course_types, course_type)


async def create_request(
    session: AsyncSession,
    *,
    request_id: int,
    student_id: int,
    teacher_id: int,
    start_at: datetime,
    course_type: CourseType,
    payment: Payment,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> ClassRequest:
    """Record the request and hold its payment."""
    await check_request(
        session,
        student_id=student_id,
        teacher_id=teacher_id,
        start_at=start_at,
        course_type=course_type,
        now=now,
        rules=rules,
    )
    busy = await session.scalar(
        select(Class.id).where(
            Class.student_id == student_id,
            Class.start_at == start_at,
            Class.state != ClassState.cancelled,
        )
    )
    if busy is not None:
        raise StudentBusy(
            "the student already has a class at that time",
            student_id=student_id,
            start_at=start_at.isoformat(),
        )
    charge = await ledger.charge_for(session, student_id, course_type, payment, now, rules)
    request: ClassRequest | None = await session.scalar(
        insert(ClassRequest)
        .values(
            id=request_id,
            student_id=student_id,
            teacher_id=teacher_id,
            start_at=start_at,
            course_type=course_type,
            state=RequestState.pending,
            payment_asset=charge.asset,
            payment_key=charge.key,
            payment_amount=charge.amount,
            deadline=request_deadline(now, start_at, rules),
            channel=actor.channel.value,
            actor_id=actor.id,
            created_at=now,
            updated_at=now,
        )
        .returning(ClassRequest)
    )
    assert request is not None
    await audit.record(
        session,
        "request",
        [request.id],
        "created",
        actor,
        now,
        start_at=start_at.isoformat(),
        course_type=course_type.value,
        deadline=request.deadline.isoformat(),
    )
    await ledger.withdraw(
        session, student_id, charge, "request_hold", actor, now, request_id=request.id
    )
    return request


async def approve(
    session: AsyncSession,
    *,
    request_id: int,
    keep_slot: bool,
    actor: Actor,
    now: datetime,
) -> ClassRequest:
    """TCH-3: create the teacher's slot at the requested time and book it, paid by the hold.

    Only before the request's deadline (`request_expired` at or after it, even if the flow's
    timer has not fired yet: the flow then returns the hold).

    With keep_slot the slot is request-directed: if the student later cancels at least 24 h
    ahead, it becomes general inventory instead of being removed (store.inventory.give_back).
    """
    request = await _close(session, request_id, RequestState.approved, now, in_time=True)
    slot = await inventory.claim_at(
        session,
        teacher_id=request.teacher_id,
        start_at=request.start_at,
        state=TimeslotState.booked,
        direction=Direction.request,
        target=str(request.id),
        origin=flow_id(request.id),
        now=now,
    )
    await audit.record(
        session, "timeslot", [slot.id], "opened", actor, now, origin=slot.origin, keep=keep_slot
    )
    charge = ledger.charge_of(request)
    await ledger.deposit(
        session, request.student_id, charge, "request_release", actor, now, request_id=request.id
    )
    booked = await classes.new_class(
        session,
        student_id=request.student_id,
        slot=slot,
        course_type=request.course_type,
        charge=charge,
        lesson=None,
        actor=actor,
        now=now,
    )
    request.keep_slot, request.class_id = keep_slot, booked.id
    await audit.record(
        session,
        "request",
        [request.id],
        "approved",
        actor,
        now,
        class_id=booked.id,
        timeslot_id=slot.id,
        keep_slot=keep_slot,
    )
    return request


async def release(
    session: AsyncSession,
    *,
    request_id: int,
    state: RequestState,
    reason: str | None,
    actor: Actor,
    now: datetime,
) -> ClassRequest:
    """Rejected, expired, withdrawn or failed: the held payment goes back in full."""
    request = await _close(session, request_id, state, now)
    request.reason = reason
    await audit.record(session, "request", [request.id], state.value, actor, now, reason=reason)
    await ledger.deposit(
        session,
        request.student_id,
        ledger.charge_of(request),
        "request_release",
        actor,
        now,
        request_id=request.id,
    )
    return request


async def _close(
    session: AsyncSession,
    request_id: int,
    state: RequestState,
    now: datetime,
    *,
    in_time: bool = False,
) -> ClassRequest:
    """Close a pending request; `in_time`: only before its deadline (an approval), whatever
    the flow's timer has or has not done yet."""
    request: ClassRequest | None = await session.scalar(
        update(ClassRequest)
        .where(
            ClassRequest.id == request_id,
            ClassRequest.state == RequestState.pending,
            ClassRequest.deadline > now if in_time else true(),
        )
        .values(state=state, updated_at=now)
        .returning(ClassRequest)
    )
    if request is None:
        found = await get_request(session, request_id)
        if found.state is RequestState.pending:
            raise RequestExpired(
                "the request's deadline has passed",
                request_id=request_id,
                deadline=found.deadline.isoformat(),
            )
        raise RequestClosed(
            "the request is no longer pending", request_id=request_id, state=found.state.value
        )
    return request


async def get_request(session: AsyncSession, request_id: int) -> ClassRequest:
    return await get_or_404(session, ClassRequest, "class_request", request_id)


async def requests_of(
    session: AsyncSession,
    *,
    teacher_id: int | None,
    student_id: int | None,
    state: RequestState | None,
    limit: int,
) -> list[ClassRequest]:
    query = select(ClassRequest)
    if teacher_id is not None:
        query = query.where(ClassRequest.teacher_id == teacher_id)
    if student_id is not None:
        query = query.where(ClassRequest.student_id == student_id)
    if state is not None:
        query = query.where(ClassRequest.state == state)
    rows = await session.scalars(
        query.order_by(ClassRequest.start_at, ClassRequest.id).limit(limit)
    )
    return list(rows)
