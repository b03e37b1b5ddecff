"""Dual-excellence contracts (双优合约, TCH-6, SD-7, SD-4).

The LP creates a contract: it is active at once and weeks W1 and W2 are booked with both
teachers. Each later week's two contract-directed slots are offered to their teachers two
weeks ahead; a teacher who agrees gets the class booked on the slot, one who declines or lets
the answer deadline pass gives the slot to general inventory, and the week keeps its reason.
Each contract class sits on a slot directed at the contract (`direction_target` its id,
origin `contract-{id}`) that only the contract books. Termination cancels and refunds the
future contract classes, withdraws the weeks still awaiting an answer and removes the
contract's open slots.

Contracts proposed before weekly answers (state `proposed`) wait for both teachers' yes on
the whole contract, then book W1, W2 and each later week without asking (`answer`, `start`,
`book_week`).
"""

from collections.abc import Awaitable, Callable
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor
from domain.contract import (
    ANSWER_AHEAD,
    OFFER_AHEAD,
    BadContract,
    ContractClosed,
    ContractInput,
    ContractState,
    ContractView,
    ContractWeekAnswered,
    ContractWeekNotTheirs,
    ContractWeekState,
    Created,
    NotContractTeacher,
    Role,
    TeacherWeek,
    WeekAnswer,
    WeekBooking,
    WeeklyTime,
    WeekOffer,
    WeekOutcome,
)
from domain.errors import DomainError, FirstWeekStarted, NotFound, SlotNotOpen
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
        # This week has begun: W1 is booked as a whole week, from next week on.
        raise FirstWeekStarted(
            "the first week has begun: W1 is booked as a whole week, from next week on",
            first_week=first_week.isoformat(),
            began_at=week_start(first_week, zone).isoformat(),
            earliest=(this_week + WEEK).isoformat(),
        )
    if weeks is not None and weeks < 1:
        raise BadContract("a contract lasts at least one week", weeks=weeks)


async def propose(
    session: AsyncSession, contract: ContractInput, now: datetime, rules: BookingRules
) -> ContractView:
    row = await _insert(session, contract, ContractState.proposed, "proposed", now, rules)
    return view_of(row, rules)


async def create(
    session: AsyncSession, contract: ContractInput, now: datetime, rules: BookingRules
) -> Created:
    """SD-7: the LP schedules the contract. It is active at once and W1 and W2 are booked with
    both teachers, in one transaction; a role that cannot be booked keeps its reason."""
    row = await _insert(session, contract, ContractState.active, "started", now, rules)
    weeks = [
        await book_week(
            session,
            contract_id=row.id,
            week=row.first_week + i * WEEK,
            actor=contract.actor,
            now=now,
            rules=rules,
        )
        for i in range(min(WEEKS_AHEAD, row.weeks or WEEKS_AHEAD))
    ]
    return Created(view=view_of(row, rules), weeks=weeks)


async def _insert(
    session: AsyncSession,
    contract: ContractInput,
    state: ContractState,
    action: str,
    now: datetime,
    rules: BookingRules,
) -> Contract:
    """The contract checked and recorded in `state`, with its audit row."""
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
    row = _new_row(contract, state, now)
    session.add(row)
    await session.flush()
    await audit.record(session, "contract", [row.id], action, contract.actor, now)
    return row


def _new_row(contract: ContractInput, state: ContractState, now: datetime) -> Contract:
    return Contract(
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
        state=state,
        channel=contract.actor.channel.value,
        actor_id=contract.actor.id,
        created_at=now,
        updated_at=now,
    )


def view_of(row: Contract, rules: BookingRules) -> ContractView:
    view = ContractView.model_validate(row)
    if row.state is not ContractState.proposed and row.chinese_agreed is row.foreign_agreed is None:
        return view  # created with W1 and W2 booked: no answer to the whole contract
    return view.model_copy(
        update={"answer_by": week_start(row.first_week, rules.business_time_zone)}
    )


async def get_contract(session: AsyncSession, contract_id: int, *, lock: bool = False) -> Contract:
    return await get_or_404(session, Contract, "contract", contract_id, lock=lock)


async def _lock_active(session: AsyncSession, contract_id: int) -> Contract:
    """The contract row, locked as termination locks it, and still active: what books or
    offers on it then waits for a termination under way and finds the contract closed."""
    row = await get_contract(session, contract_id, lock=True)
    if row.state is not ContractState.active:
        raise ContractClosed("the contract is not active", state=row.state.value, id=row.id)
    return row


RoleStep = Callable[
    [AsyncSession, Contract, Role, date, Actor, datetime, BookingRules], Awaitable[ContractWeek]
]


async def _each_role(
    session: AsyncSession,
    row: Contract,
    week: date,
    step: RoleStep,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> list[WeekBooking]:
    """The week's outcome for each role, doing `step` only for a role without one yet, so a
    retried activity keeps the first outcome."""
    bookings = []
    for role in Role:
        done = await session.get(ContractWeek, (row.id, week, role))
        if done is None:
            done = await step(session, row, role, week, actor, now, rules)
        bookings.append(WeekBooking.model_validate(done))
    return bookings


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
    actor: Actor,
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
    await audit.record(
        session,
        "contract",
        [row.id],
        "agreed" if agree else "declined",
        actor,
        now,
        role=role.value,
        reason=reason,
    )
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
    await audit.record(session, "contract", [row.id], "started", actor, now)
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
    row = await _lock_active(session, contract_id)
    zone = rules.business_time_zone
    return WeekOutcome(
        week=week,
        bookings=await _each_role(session, row, week, _book_role, actor, now, rules),
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
        teacher_id=teacher_id,
        start_at=start_at,
        state=ContractWeekState.unbooked if class_id is None else ContractWeekState.booked,
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
    await audit.record(session, "contract", [row.id], state.value, actor, now, reason=reason)
    if state is ContractState.terminated:
        withdrawn = await session.scalars(
            update(ContractWeek)
            .where(
                ContractWeek.contract_id == contract_id,
                ContractWeek.state == ContractWeekState.awaiting,
            )
            .values(state=ContractWeekState.withdrawn, reason=reason or "contract terminated")
            .returning(ContractWeek)
        )
        for done in sorted(withdrawn, key=lambda w: (w.week, w.role.value)):
            await _week_event(session, done, actor, now)
        future = await session.scalars(
            select(Class.id)
            .join(Timeslot, Timeslot.id == Class.timeslot_id)
            .where(
                *_directed_at(contract_id),
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
                *_directed_at(contract_id),
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
    row = await _lock_active(session, contract_id)
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


def _directed_at(contract_id: int) -> tuple[ColumnElement[bool], ...]:
    """The contract's slots: those only it books (a slot given back to general inventory is no
    longer the contract's, whoever books it)."""
    return (Timeslot.direction == Direction.contract, Timeslot.direction_target == str(contract_id))


async def offer_week(
    session: AsyncSession,
    *,
    contract_id: int,
    week: date,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> WeekOffer:
    """SD-7: the week's two contract-directed slots, opened for the contract and offered to
    their teachers, each answering before the week before it begins. A teacher whose time is
    taken is recorded as that role's reason (`teacher_busy`), with nothing offered."""
    row = await _lock_active(session, contract_id)
    zone = rules.business_time_zone
    return WeekOffer(
        week=week,
        bookings=await _each_role(session, row, week, _offer_role, actor, now, rules),
        next_offer_at=week_start(week + WEEK - OFFER_AHEAD, zone),
        ends_at=week_start(week + WEEK, zone),
    )


async def _offer_role(
    session: AsyncSession,
    row: Contract,
    role: Role,
    week: date,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> ContractWeek:
    teacher_id, weekday, start = _weekly(row, role)
    zone = rules.business_time_zone
    done = ContractWeek(
        contract_id=row.id,
        week=week,
        role=role,
        teacher_id=teacher_id,
        start_at=at(week, weekday, start, zone),
        state=ContractWeekState.awaiting,
        answer_by=week_start(week - ANSWER_AHEAD, zone),
        created_at=now,
    )
    try:
        async with session.begin_nested():
            slot = await inventory.claim_at(
                session,
                teacher_id=teacher_id,
                start_at=done.start_at,
                state=TimeslotState.open,
                direction=Direction.contract,
                target=str(row.id),
                origin=flow_id(row.id),
                now=now,
            )
            await audit.record(
                session, "timeslot", [slot.id], "opened", actor, now, origin=slot.origin
            )
            done.timeslot_id = slot.id
    except DomainError as error:
        done.state, done.answer_by, done.reason = ContractWeekState.unbooked, None, error.code
    session.add(done)
    await session.flush()
    await _week_event(session, done, actor, now)
    return done


async def _week_event(
    session: AsyncSession, done: ContractWeek, actor: Actor, now: datetime
) -> None:
    """`contract.week_<state>`: one teacher's class of one week was offered (`awaiting`),
    booked, not booked, declined, expired or withdrawn (the contract terminated)."""
    await audit.record(
        session,
        "contract",
        [done.contract_id],
        f"week_{done.state.value}",
        actor,
        now,
        week=done.week.isoformat(),
        role=done.role.value,
        teacher_id=done.teacher_id,
        timeslot_id=done.timeslot_id,
        class_id=done.class_id,
        reason=done.reason,
    )


async def answer_week(
    session: AsyncSession,
    *,
    contract_id: int,
    answer: WeekAnswer,
    now: datetime,
    rules: BookingRules,
) -> WeekBooking:
    """TCH-6: a teacher's answer for their class of one week. Yes books the class on the
    offered slot, paid with a credit (a booking that fails keeps its reason, and the slot goes
    to general inventory); no gives the slot to general inventory."""
    row = await get_contract(session, contract_id, lock=True)
    done = await _awaiting_week(session, row, answer, now, lock=True)
    assert done.timeslot_id is not None
    role = done.role
    done.answered_at = now
    if answer.agree:
        try:
            async with session.begin_nested():
                booked = await _book_offered(
                    session, row, done.timeslot_id, answer.actor, now, rules
                )
                done.state, done.class_id = ContractWeekState.booked, booked.id
        except DomainError as error:
            done.state, done.reason = ContractWeekState.unbooked, error.code
    else:
        done.state = ContractWeekState.declined
        done.reason = answer.reason or f"the {role.value} teacher declined"
    if done.state is not ContractWeekState.booked:
        await _release(session, done.timeslot_id, answer.actor, now)
    await session.flush()
    await _week_event(session, done, answer.actor, now)
    return WeekBooking.model_validate(done)


async def check_week_answer(
    session: AsyncSession, *, contract_id: int, answer: WeekAnswer, now: datetime
) -> None:
    """What refuses a teacher's answer before it reaches the flow (`answer_week` checks it
    again, under lock)."""
    row = await get_contract(session, contract_id)
    await _awaiting_week(session, row, answer, now, lock=False)


async def _awaiting_week(
    session: AsyncSession, row: Contract, answer: WeekAnswer, now: datetime, *, lock: bool
) -> ContractWeek:
    """The teacher's week of this contract, still awaiting their answer, before its
    deadline."""
    role = _role_for_week(row, answer.teacher_id)
    if row.state is not ContractState.active:
        raise ContractClosed("the contract is not active", state=row.state.value, id=row.id)
    done = await session.get(ContractWeek, (row.id, answer.week, role), with_for_update=lock)
    if done is None:
        raise NotFound("contract_week", f"{row.id}/{answer.week.isoformat()}/{role.value}")
    if done.state is not ContractWeekState.awaiting:
        raise ContractWeekAnswered(
            "this week is no longer awaiting the teacher's answer",
            contract_id=row.id,
            week=answer.week.isoformat(),
            role=role.value,
            state=done.state.value,
        )
    assert done.answer_by is not None
    if now >= done.answer_by:
        raise ContractWeekAnswered(
            "the answer deadline has passed",
            contract_id=row.id,
            week=answer.week.isoformat(),
            role=role.value,
            state=done.state.value,
            answer_by=done.answer_by.isoformat(),
        )
    return done


def _role_for_week(row: Contract, teacher_id: int) -> Role:
    if teacher_id == row.chinese_teacher_id:
        return Role.chinese
    if teacher_id == row.foreign_teacher_id:
        return Role.foreign
    raise ContractWeekNotTheirs(
        "a teacher answers only the weeks of the contracts they teach",
        contract_id=row.id,
        teacher_id=teacher_id,
    )


async def _book_offered(
    session: AsyncSession,
    row: Contract,
    slot_id: int,
    actor: Actor,
    now: datetime,
    rules: BookingRules,
) -> Class:
    slot = await session.scalar(
        update(Timeslot)
        .where(Timeslot.id == slot_id, Timeslot.state == TimeslotState.open, *_directed_at(row.id))
        .values(state=TimeslotState.booked, updated_at=now)
        .returning(Timeslot)
    )
    if slot is None:
        raise SlotNotOpen("the offered slot is no longer open", timeslot_id=slot_id)
    check_student_can_book(slot.start_at, now, rules)
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


async def _release(session: AsyncSession, slot_id: int, actor: Actor, now: datetime) -> None:
    """An offered slot nobody books for the contract becomes the teacher's general inventory."""
    released = await session.scalar(
        update(Timeslot)
        .where(Timeslot.id == slot_id, Timeslot.state == TimeslotState.open)
        .values(direction=Direction.general, direction_target=None, updated_at=now)
        .returning(Timeslot.id)
    )
    if released is not None:
        await audit.record(session, "timeslot", [released], "released", actor, now)


async def expire_weeks(
    session: AsyncSession, *, contract_id: int, actor: Actor, now: datetime
) -> list[WeekBooking]:
    """The weeks whose answer deadline has passed without an answer: expired, each slot given
    to general inventory."""
    await get_contract(session, contract_id, lock=True)
    overdue = await session.scalars(
        select(ContractWeek)
        .where(
            ContractWeek.contract_id == contract_id,
            ContractWeek.state == ContractWeekState.awaiting,
            ContractWeek.answer_by <= now,
        )
        .order_by(ContractWeek.week, ContractWeek.role)
        .with_for_update()
    )
    expired = []
    for done in list(overdue):
        assert done.answer_by is not None and done.timeslot_id is not None
        done.state = ContractWeekState.expired
        done.reason = (
            f"the {done.role.value} teacher did not answer by {done.answer_by.isoformat()}"
        )
        await _release(session, done.timeslot_id, actor, now)
        await session.flush()
        await _week_event(session, done, actor, now)
        expired.append(WeekBooking.model_validate(done))
    return expired


async def weeks_awaiting(
    session: AsyncSession, teacher_id: int, rules: BookingRules
) -> list[TeacherWeek]:
    """TCH-6: the contract weeks awaiting this teacher's answer, soonest deadline first, with
    the times in the teacher's zone."""
    teacher = await get_teacher(session, teacher_id)
    zone = ZoneInfo(teacher.time_zone)
    rows = await session.execute(
        select(ContractWeek, Contract)
        .join(Contract, Contract.id == ContractWeek.contract_id)
        .where(
            ContractWeek.teacher_id == teacher_id,
            ContractWeek.state == ContractWeekState.awaiting,
        )
        .order_by(ContractWeek.answer_by, ContractWeek.start_at)
    )
    out = []
    for done, row in rows.tuples():
        assert done.answer_by is not None
        _, weekday, start = _weekly(row, done.role)
        local = done.start_at.astimezone(zone)
        previous = at(done.week - WEEK, weekday, start, rules.business_time_zone).astimezone(zone)
        out.append(
            TeacherWeek(
                contract_id=row.id,
                student_id=row.student_id,
                week=done.week,
                role=done.role,
                start_at=done.start_at,
                answer_by=done.answer_by,
                time_zone=teacher.time_zone,
                local_start=local,
                previous_local_start=previous,
                local_time_moved=(local.weekday(), local.time())
                != (previous.weekday(), previous.time()),
            )
        )
    return out
