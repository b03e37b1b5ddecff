"""Dual-excellence contracts (双优合约, TCH-6, SD-7, SD-4).

The LP proposes; each teacher agrees or declines; once both agree, weeks W1 and W2 are booked
at once and then one more week every week, two weeks ahead. Each contract class sits on a
contract-directed slot (origin `contract-{id}`) that only the contract books; a week that
cannot be booked is recorded with its reason. Termination cancels and refunds the future
contract classes and removes the contract's slots.
"""

from datetime import date, datetime, time

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor
from domain.contract import (
    BadContract,
    ContractClosed,
    ContractInput,
    ContractState,
    ContractView,
    NotContractTeacher,
    Role,
    WeekBooking,
    WeeklyTime,
    WeekOutcome,
)
from domain.errors import DomainError, FirstWeekStarted
from domain.payment import Payment
from domain.rules import (
    BookingRules,
    check_on_grid,
    check_student_can_book,
    check_student_takes,
    check_teaches,
)
from domain.weekly import WEEK, Weekday, at, is_monday, on_half_hour, week_of, week_start
from domain.words import ClassState, CourseType, Direction, TeacherKind, TimeslotState
from store import audit, classes, inventory, ledger
from store.db import get_or_404
from store.models import Class, Contract, ContractWeek, Timeslot
from store.people import get_student, get_teacher

# How far ahead the contract keeps its classes booked: W1 and W2 at the start, then each
# week's Monday books the week two weeks later.
WEEKS_AHEAD = 2


def flow_id(contract_id: int) -> str:
    """The contract's workflow id, also the origin of its slots."""
    return f"contract-{contract_id}"


async def next_contract_id(session: AsyncSession) -> int:
    return int(
        await session.scalar(select(func.nextval(func.pg_get_serial_sequence("contracts", "id"))))
        or 0
    )


async def check_proposal(
    session: AsyncSession,
    *,
    student_id: int,
    chinese: WeeklyTime,
    foreign: WeeklyTime,
    first_week: date,
    weeks: int | None,
    course_type: CourseType,
    now: datetime,
    rules: BookingRules,
) -> None:
    """What is refused before a flow starts: unknown people, kinds, course type, times."""
    student = await get_student(session, student_id)
    check_student_takes(student.id, student.level, course_type)
    for role, slot, kind in (
        (Role.chinese, chinese, TeacherKind.chinese),
        (Role.foreign, foreign, TeacherKind.foreign),
    ):
        teacher = await get_teacher(session, slot.teacher_id)
        if teacher.kind is not kind:
            raise BadContract(
                f"the {role.value} teacher must be a {kind.value} teacher",
                role=role.value,
                teacher_id=teacher.id,
                kind=teacher.kind.value,
            )
        # The Chinese half of a contract is any Chinese teacher's; the foreign teacher is
        # certified for the course type.
        check_teaches(teacher.id, teacher.kind, teacher.course_types, course_type, contract=True)
        if not on_half_hour(slot.start):
            raise BadContract(
                "a weekly time starts on :00 or :30", role=role.value, start=slot.start.isoformat()
            )
    zone = rules.business_time_zone
    if not is_monday(first_week):
        raise BadContract("first_week is a Monday", first_week=first_week.isoformat())
    this_week = week_of(now, zone)
    latest = week_of(now + rules.student_book_ahead, zone)
    if not this_week <= first_week <= latest:
        raise BadContract(
            "the first week is between next week and the booking horizon",
            first_week=first_week.isoformat(),
            earliest=(this_week + WEEK).isoformat(),
            latest=latest.isoformat(),
        )
    if week_start(first_week, zone) <= now:
        # This week: the teachers answer before the first week begins, and it has begun.
        raise FirstWeekStarted(
            "the first week has begun: the teachers would have no time to answer",
            first_week=first_week.isoformat(),
            began_at=week_start(first_week, zone).isoformat(),
            earliest=(this_week + WEEK).isoformat(),
        )
    if weeks is not None and weeks < 1:
        raise BadContract("a contract lasts at least one week", weeks=weeks)


async def propose(
    session: AsyncSession, contract: ContractInput, now: datetime, rules: BookingRules
) -> ContractView:
    await check_proposal(
        session,
        student_id=contract.student_id,
        chinese=contract.chinese,
        foreign=contract.foreign,
        first_week=contract.first_week,
        weeks=contract.weeks,
        course_type=contract.course_type,
        now=now,
        rules=rules,
    )
    row = Contract(
        id=contract.contract_id,
        student_id=contract.student_id,
        chinese_teacher_id=contract.chinese.teacher_id,
        chinese_weekday=contract.chinese.weekday,
        chinese_start=contract.chinese.start,
        foreign_teacher_id=contract.foreign.teacher_id,
        foreign_weekday=contract.foreign.weekday,
        foreign_start=contract.foreign.start,
        first_week=contract.first_week,
        weeks=contract.weeks,
        course_type=contract.course_type,
        state=ContractState.proposed,
        channel=contract.actor.channel.value,
        actor_id=contract.actor.id,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return view_of(row, rules)


def view_of(row: Contract, rules: BookingRules) -> ContractView:
    view = ContractView.model_validate(row)
    return view.model_copy(
        update={"answer_by": week_start(row.first_week, rules.business_time_zone)}
    )


async def get_contract(session: AsyncSession, contract_id: int, *, lock: bool = False) -> Contract:
    return await get_or_404(session, Contract, "contract", contract_id, lock=lock)


def role_of(row: Contract, teacher_id: int) -> Role:
    if teacher_id == row.chinese_teacher_id:
        return Role.chinese
    if teacher_id == row.foreign_teacher_id:
        return Role.foreign
    raise NotContractTeacher(
        "only the contract's two teachers answer it", contract_id=row.id, teacher_id=teacher_id
    )


async def answer(
    session: AsyncSession,
    *,
    contract_id: int,
    teacher_id: int,
    agree: bool,
    reason: str | None,
    now: datetime,
    rules: BookingRules,
) -> ContractView:
    """TCH-6: one teacher's answer. A no declines the contract at once."""
    row = await get_contract(session, contract_id, lock=True)
    role = role_of(row, teacher_id)
    if row.state is not ContractState.proposed:
        raise ContractClosed(
            "the contract is no longer waiting for answers", state=row.state.value, id=row.id
        )
    setattr(row, f"{role.value}_agreed", agree)
    if not agree:
        row.state, row.reason = (
            ContractState.declined,
            reason or f"the {role.value} teacher declined",
        )
    row.updated_at = now
    return view_of(row, rules)


async def start(
    session: AsyncSession, *, contract_id: int, actor: Actor, now: datetime, rules: BookingRules
) -> list[WeekOutcome]:
    """SD-7: both teachers agreed. The contract becomes active and W1, W2 are booked with both
    teachers, in one transaction."""
    row = await get_contract(session, contract_id, lock=True)
    if row.state is not ContractState.proposed or not (row.chinese_agreed and row.foreign_agreed):
        raise ContractClosed("the contract cannot start", state=row.state.value, id=row.id)
    row.state, row.updated_at = ContractState.active, now
    weeks = min(WEEKS_AHEAD, row.weeks or WEEKS_AHEAD)
    return [
        await book_week(
            session,
            contract_id=contract_id,
            week=row.first_week + i * WEEK,
            actor=actor,
            now=now,
            rules=rules,
        )
        for i in range(weeks)
    ]


def _weekly(row: Contract, role: Role) -> tuple[int, int, time]:
    if role is Role.chinese:
        return row.chinese_teacher_id, Weekday(row.chinese_weekday).number, row.chinese_start
    return row.foreign_teacher_id, Weekday(row.foreign_weekday).number, row.foreign_start


async def book_week(
    session: AsyncSession,
    *,
    contract_id: int,
    week: date,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> WeekOutcome:
    """Create the week's two contract-directed slots and book them, each on its own: a teacher
    or the student busy, or no balance, is recorded as that role's reason for the week."""
    row = await get_contract(session, contract_id, lock=True)
    if row.state is not ContractState.active:
        raise ContractClosed("the contract is not active", state=row.state.value, id=row.id)
    zone = rules.business_time_zone
    bookings = []
    for role in Role:
        done = await session.get(ContractWeek, (contract_id, week, role))
        if done is None:
            done = await _book_role(session, row, role, week, actor, now, rules)
        bookings.append(WeekBooking.model_validate(done))
    return WeekOutcome(
        week=week,
        bookings=bookings,
        next_booking_at=week_start(week - (WEEKS_AHEAD - 1) * WEEK, zone),
        ends_at=week_start(week + WEEK, zone),
    )


async def _book_role(
    session: AsyncSession,
    row: Contract,
    role: Role,
    week: date,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> ContractWeek:
    teacher_id, weekday, start = _weekly(row, role)
    start_at = at(week, weekday, start, rules.business_time_zone)
    class_id, reason = None, None
    try:
        async with session.begin_nested():
            booked = await _book_on_contract_slot(
                session, row, teacher_id, start_at, actor, now, rules
            )
            class_id = booked.id
    except DomainError as error:
        reason = error.code
    done = ContractWeek(
        contract_id=row.id,
        week=week,
        role=role,
        start_at=start_at,
        class_id=class_id,
        reason=reason,
        created_at=now,
    )
    session.add(done)
    await session.flush()
    return done


async def _book_on_contract_slot(
    session: AsyncSession,
    row: Contract,
    teacher_id: int,
    start_at: datetime,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> Class:
    """The contract's open slot of the teacher at that time (left by a cancelled contract
    class), or a new one claimed for the contract; then the class, paid with a credit."""
    if start_at <= now + rules.student_book_min_lead:
        check_student_can_book(start_at, now, rules)
    slot = await session.scalar(
        update(Timeslot)
        .where(
            Timeslot.teacher_id == teacher_id,
            Timeslot.start_at == start_at,
            Timeslot.state == TimeslotState.open,
            Timeslot.direction == Direction.contract,
            Timeslot.direction_target == str(row.id),
        )
        .values(state=TimeslotState.booked, updated_at=now)
        .returning(Timeslot)
    )
    if slot is None:
        slot = await inventory.claim_at(
            session,
            teacher_id=teacher_id,
            start_at=start_at,
            state=TimeslotState.booked,
            direction=Direction.contract,
            target=str(row.id),
            origin=flow_id(row.id),
            now=now,
        )
        await audit.record(session, "timeslot", [slot.id], "opened", actor, now, origin=slot.origin)
    charge = await ledger.charge_for(
        session, row.student_id, row.course_type, Payment(), now, rules
    )
    return await classes.new_class(
        session,
        student_id=row.student_id,
        slot=slot,
        course_type=row.course_type,
        charge=charge,
        lesson=None,
        actor=actor,
        now=now,
    )


async def close(
    session: AsyncSession,
    *,
    contract_id: int,
    state: ContractState,
    reason: str | None,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> ContractView:
    """Terminated (by the LP), expired (no answers in time) or finished (last week over).

    Terminated: every future contract class is cancelled with a full refund and every contract
    slot still ahead is removed.
    """
    row = await get_contract(session, contract_id, lock=True)
    if row.state not in (ContractState.proposed, ContractState.active):
        raise ContractClosed("the contract is already closed", state=row.state.value, id=row.id)
    row.state, row.reason, row.updated_at = state, reason, now
    if state is ContractState.terminated:
        future = await session.scalars(
            select(Class.id)
            .join(Timeslot, Timeslot.id == Class.timeslot_id)
            .where(
                Timeslot.origin == flow_id(contract_id),
                Class.state == ClassState.booked,
                Class.start_at > now,
            )
            .order_by(Class.start_at)
        )
        for class_id in list(future):
            await classes.cancel_class(
                session,
                class_id=class_id,
                reason="contract terminated",
                actor=actor,
                now=now,
                rules=rules,
                by_teacher=True,
            )
        removed = await session.scalars(
            update(Timeslot)
            .where(
                Timeslot.origin == flow_id(contract_id),
                Timeslot.state == TimeslotState.open,
                Timeslot.start_at > now,
            )
            .values(state=TimeslotState.removed, updated_at=now)
            .returning(Timeslot.id)
        )
        await audit.record(session, "timeslot", list(removed), "removed", actor, now)
    return view_of(row, rules)


async def make_up(
    session: AsyncSession,
    *,
    contract_id: int,
    role: Role,
    start_at: datetime,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> Class:
    """SD-4: the LP books a replacement class with the contract's Chinese or foreign teacher,
    on a contract-directed slot.

    The contract row is locked, as termination locks it: a make-up waits for a termination
    under way and then finds the contract closed, and a termination waits for a make-up under
    way and then cancels and refunds its class with the others."""
    row = await get_contract(session, contract_id, lock=True)
    if row.state is not ContractState.active:
        raise ContractClosed("the contract is not active", state=row.state.value, id=row.id)
    check_on_grid(start_at)
    check_student_can_book(start_at, now, rules)
    teacher_id, _, _ = _weekly(row, role)
    return await _book_on_contract_slot(session, row, teacher_id, start_at, actor, now, rules)


async def weeks_of(session: AsyncSession, contract_id: int) -> list[WeekBooking]:
    await get_contract(session, contract_id)
    rows = await session.scalars(
        select(ContractWeek)
        .where(ContractWeek.contract_id == contract_id)
        .order_by(ContractWeek.week, ContractWeek.role)
    )
    return [WeekBooking.model_validate(r) for r in rows]
