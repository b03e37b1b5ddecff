"""Rules PostgreSQL keeps, whatever runs at once: CHECK constraints, partial unique
indexes, conditional updates and row locks, each with the race or the state that broke it.

covers: PAR-1, PAR-3, TCH-3, TCH-5, SD-4, SD-6, LP-1, H5-10, TMK-1
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.util import await_only
from temporalio.client import ScheduleActionStartWorkflow

from domain.channels import Actor, Channel
from domain.contract import ContractClosed, ContractState, Role
from domain.errors import HoldClosed, RequestExpired
from domain.operation_key_cleanup import KeyCleanup
from domain.payment import Payment
from domain.rules import BookingRules
from domain.weekly import next_week, week_of
from domain.words import CourseType, HoldState, RequestState, TimeslotState
from store import class_requests, contracts, holds
from store.db import Sessions
from store.models import ClassRequest
from tests.conftest import T0, Clock, Stack
from tests.helpers import (
    CC,
    FIREMAN,
    LP,
    as_,
    assert_money_consistent,
    book,
    client_showing_500s,
    open_slots,
    refused,
    snapshot,
    student,
    teacher,
)
from tests.test_class_request_flow import on_grid
from tests.test_contract_flow import ZONE, foreign_start, pair, proposal
from tests.test_overbooking_flow import start_in
from tests.test_races import outcome
from tests.test_teacher_cancel_flow import booked_class, teacher_cancels
from workflows.operation_key_cleanup import OperationKeyCleanupWorkflow
from yueke.schedules import SCHEDULES
from yueke.settings import Settings

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(weeks=1)


async def sql(db: Sessions, statement: str, **params: object) -> list[tuple[object, ...]]:
    async with db.begin() as session:
        result = await session.execute(text(statement), params)
        return [tuple(row) for row in result] if result.returns_rows else []


# --- 9. classes start on the grid ---------------------------------------------------------------


@pytest.mark.parametrize(
    "off", [timedelta(minutes=15), timedelta(seconds=30), timedelta(milliseconds=400)]
)
async def test_postgres_refuses_a_class_or_a_timeslot_off_the_grid(
    db: Sessions, off: timedelta
) -> None:
    """PAR-1, TMK-1 and every path that makes a class: PostgreSQL itself refuses a class that
    does not start on :00/:30 to the second (ck_classes_on_grid), and a timeslot too (a
    fraction of a second no longer rounds onto the grid)."""
    [(teacher_id,)] = await sql(
        db,
        "INSERT INTO teachers (name, kind, time_zone, course_types, created_at) "
        "VALUES ('T', 'foreign', 'UTC', '{major}', :now) RETURNING id",
        now=T0,
    )
    [(student_id,)] = await sql(
        db,
        "INSERT INTO students (name, level, time_zone, created_at) "
        "VALUES ('S', 1, 'UTC', :now) RETURNING id",
        now=T0,
    )
    start = T0 + 2 * DAY
    new_class = (
        "INSERT INTO classes (student_id, start_at, course_type, state, payment_asset, "
        "payment_key, payment_amount, channel, actor_id, created_at, updated_at) "
        "VALUES (:s, :start, 'trial', 'booked', 'credit', 'trial', 1, 'cc', 'cc-1', :now, :now)"
    )
    new_slot = (
        "INSERT INTO timeslots (teacher_id, start_at, state, direction, created_at, updated_at) "
        "VALUES (:t, :start, 'open', 'general', :now, :now)"
    )
    with pytest.raises(IntegrityError, match="ck_classes_on_grid"):
        await sql(db, new_class, s=student_id, start=start + off, now=T0)
    with pytest.raises(IntegrityError, match="ck_timeslots_on_grid"):
        await sql(db, new_slot, t=teacher_id, start=start + off, now=T0)
    await sql(db, new_class, s=student_id, start=start, now=T0)
    await sql(db, new_slot, t=teacher_id, start=start, now=T0)
    assert await sql(db, "SELECT count(*) FROM classes") == [(1,)]


# --- 3. a hold's expiry or extension never overwrites a booking ---------------------------------

FIREMAN_ACTOR = Actor(channel=Channel.fireman, id="ops-1")


async def test_a_hold_booked_meanwhile_is_neither_expired_nor_extended(
    stack: Stack, db: Sessions
) -> None:
    """TCH-5: the timer's close_hold and fireman's extend_hold read the hold while it is
    holding; the student books an offered slot and commits; then each step writes. The hold
    stays booked: close changes nothing, extend is refused with hold_closed."""
    api = stack.api
    t, s, class_id, start = await booked_class(stack)
    hold = (await teacher_cancels(api, t, class_id, start + DAY, start + 2 * DAY)).json()
    first, second = (o["id"] for o in hold["offered"])
    now = await stack.now()
    async with db.begin() as timer, db.begin() as extension:
        # Each step's read, kept (the session's identity map holds what is referenced).
        read = [await holds.get_hold(session, class_id) for session in (timer, extension)]
        assert {record.state for record in read} == {HoldState.holding}
        r = await book(api, s, first)
        assert r.status_code == 201, r.text
        closed = await holds.close_hold(timer, class_id, HoldState.expired, FIREMAN_ACTOR, now)
        assert closed.state is HoldState.booked
        with pytest.raises(HoldClosed):
            await holds.extend_hold(
                extension, class_id, now + 2 * DAY, FIREMAN_ACTOR, now, BookingRules()
            )
    async with db() as session:
        record = await holds.get_hold(session, class_id)
        assert (record.state, record.booked_class_id) == (HoldState.booked, r.json()["id"])
        assert record.expires_at == datetime.fromisoformat(hold["expires_at"])
        states = {slot.id: slot.state for slot in await holds.offered_slots(session, class_id)}
    assert states == {first: TimeslotState.booked, second: TimeslotState.removed}
    await assert_money_consistent(db)


# --- 5. a lost booking race is diagnosed from the slot as it is ---------------------------------


@pytest.fixture
async def api500(settings: Settings, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    """The API on the test clock, a 500 coming back as an answer to count (races)."""
    async with client_showing_500s(settings, clock) as client:
        yield client


@contextmanager
def after_a_missed_take(job: Callable[[], Awaitable[object]]) -> Iterator[list[object]]:
    """Run `job` to its end right after the first conditional UPDATE of a timeslot that took
    nothing, before the transaction that ran it says another word: the moment a concurrent
    commit lands between a booking's attempt and its diagnosis."""
    done: list[object] = []
    started: list[bool] = []

    def hook(conn: object, cursor: Any, statement: str, *_: object) -> None:
        if started or not statement.startswith("UPDATE timeslots SET state"):
            return
        if "RETURNING" in statement and cursor.rowcount == 0:
            started.append(True)
            done.append(await_only(job()))

    event.listen(Engine, "after_cursor_execute", hook)
    try:
        yield done
    finally:
        event.remove(Engine, "after_cursor_execute", hook)


async def test_a_booker_racing_a_cancel_is_never_told_a_general_slot_is_reserved(
    api500: httpx.AsyncClient, db: Sessions
) -> None:
    """PAR-1, PAR-3, H5-1, H5-5 (race): others book a slot while its student cancels; the
    cancel commits right after a booker's conditional UPDATE missed the slot. That booker
    answers from the slot locked as it now is: it books the slot freed meanwhile (never
    `slot_reserved` with `direction: general`); the others hear slot_already_booked."""
    api = api500
    t = await teacher(api)
    [slot] = await open_slots(api, t, T0 + 3 * DAY)
    holder = await student(api, credits={"major": 1})
    bookers = [await student(api, credits={"major": 1}) for _ in range(4)]
    r = await book(api, holder, slot)
    assert r.status_code == 201, r.text
    cancel_url = f"/v1/classes/{r.json()['id']}/cancel"

    async def cancel() -> httpx.Response:
        return await api.post(cancel_url, json={}, headers=as_("parent_h5", holder))

    with after_a_missed_take(cancel) as cancelled:
        answers = await asyncio.gather(*(book(api, s, slot) for s in bookers))
    assert [c.status_code for c in cancelled] == [200]  # type: ignore[attr-defined]
    counted = Counter(outcome(r) for r in answers)
    assert counted == {(201, None): 1, (409, "slot_already_booked"): 3}, counted
    assert await sql(db, "SELECT count(*) FROM classes WHERE state = 'booked'") == [(1,)]
    await assert_money_consistent(db)


# --- 1, 2. teacher-cancel offers: bookable by the student, general once the class is cancelled --


async def test_an_offered_slot_booked_then_cancelled_becomes_general_inventory(
    stack: Stack, db: Sessions
) -> None:
    """TCH-5, then PAR-3 / H5-5: the student books the time the teacher offered, then cancels.
    The slot is not left held for that student past its hold: it opens as general inventory
    (no direction, no expiry), and anyone may book it."""
    api = stack.api
    t, s, class_id, start = await booked_class(stack)
    hold = (await teacher_cancels(api, t, class_id, start + DAY)).json()
    [offered] = hold["offered"]
    r = await book(api, s, offered["id"])
    assert r.status_code == 201, r.text
    r = await api.post(f"/v1/classes/{r.json()['id']}/cancel", json={}, headers=as_("parent_h5", s))
    assert (r.status_code, r.json()["refunded"]) == (200, True), r.text
    [(state, direction, target, expires_at)] = await sql(
        db,
        "SELECT state, direction, direction_target, expires_at FROM timeslots WHERE id = :id",
        id=offered["id"],
    )
    assert (state, direction, target, expires_at) == ("open", "general", None, None)
    other = await student(api, credits={"major": 1})
    r = await book(api, other, offered["id"])
    assert r.status_code == 201, r.text
    assert (await api.get(f"/v1/teacher-cancels/{class_id}", headers=LP)).json()["state"] == (
        "booked"
    )
    await assert_money_consistent(db)


@pytest.mark.parametrize("ahead", [timedelta(minutes=30), 4 * WEEK + DAY])
async def test_a_teacher_offers_only_times_the_student_can_book(
    stack: Stack, db: Sessions, ahead: timedelta
) -> None:
    """TCH-5: an offered time outside the student's booking window (at least 1 h, at most
    4 weeks ahead), though inside the teacher's 8 weeks, could never be booked: the cancel is
    refused with outside_booking_window and changes nothing."""
    api = stack.api
    t, _s, class_id, _start = await booked_class(stack)
    offered = on_grid(await stack.now(), ahead + HOUR)
    if ahead < HOUR:
        offered = on_grid(await stack.now(), HOUR) - timedelta(minutes=30)
    body = {"offered_start_at": [offered.isoformat()], "reason": "sick"}
    await refused(
        api,
        db,
        f"/v1/classes/{class_id}/teacher-cancel",
        body,
        as_("teacher", t),
        422,
        "outside_booking_window",
    )


# --- 6, 10. class requests: the store keeps the deadline, and keep_slot's 24 h ----------------

LP_ACTOR = Actor(channel=Channel.lp, id="lp-1")
RULES = BookingRules()


async def requested(
    db: Sessions, teacher_id: int, student_id: int, start: datetime, now: datetime
) -> int:
    """A pending class request, made through the store at `now` (its flow plays no part)."""
    async with db.begin() as session:
        request_id = await class_requests.next_request_id(session)
        await class_requests.create_request(
            session,
            request_id=request_id,
            student_id=student_id,
            teacher_id=teacher_id,
            start_at=start,
            course_type=CourseType.major,
            payment=Payment(),
            actor=LP_ACTOR,
            now=now,
            rules=RULES,
        )
    return request_id


async def approve(db: Sessions, request_id: int, teacher_id: int, now: datetime) -> ClassRequest:
    async with db.begin() as session:
        return await class_requests.approve(
            session,
            request_id=request_id,
            keep_slot=True,
            actor=Actor(channel=Channel.teacher, id=str(teacher_id)),
            now=now,
        )


async def test_the_store_refuses_an_approval_at_or_after_the_deadline(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """TCH-3, TCH-4, LP-6: the deadline min(created + 24 h, start − 2 h) is the store's rule,
    not only the flow's timer: an approval at the deadline (say, in the timer's activation) is
    refused with request_expired and changes nothing; a second earlier it books."""
    t = await teacher(api)
    s = await student(api, credits={"major": 1})
    start = T0 + 2 * DAY
    request_id = await requested(db, t, s, start, T0)
    deadline = T0 + DAY
    before = await snapshot(db)
    with pytest.raises(RequestExpired) as refusal:
        await approve(db, request_id, t, deadline)
    assert (refusal.value.status, refusal.value.details["deadline"]) == (409, deadline.isoformat())
    assert await snapshot(db) == before
    approved = await approve(db, request_id, t, deadline - timedelta(seconds=1))
    assert approved.state is RequestState.approved
    await assert_money_consistent(db)


@pytest.mark.parametrize(
    ("cancel_before", "kept"), [(DAY, True), (DAY - timedelta(seconds=1), False)]
)
async def test_keep_slot_turns_the_slot_general_only_on_a_cancel_24_hours_ahead(
    api: httpx.AsyncClient, db: Sessions, clock: Clock, cancel_before: timedelta, kept: bool
) -> None:
    """TCH-3, then PAR-3 / H5-5: the teacher ticked keep_slot. The student cancels at least
    24 h ahead: refunded, and the slot becomes general inventory. Later than that: not
    refunded, and the slot is removed (the seed keeps it only for cancels 24 h ahead)."""
    t = await teacher(api)
    s = await student(api, credits={"major": 1})
    start = T0 + 3 * DAY
    approved = await approve(db, await requested(db, t, s, start, T0), t, T0 + HOUR)
    clock.now = start - cancel_before
    r = await api.post(
        f"/v1/classes/{approved.class_id}/cancel", json={}, headers=as_("parent_h5", s)
    )
    assert (r.status_code, r.json()["refunded"]) == (200, kept), r.text
    [(state, direction)] = await sql(
        db,
        "SELECT state, direction FROM timeslots WHERE id = :id",
        id=r.json()["timeslot_id"],
    )
    assert (state, direction) == (("open", "general") if kept else ("removed", "general"))
    await assert_money_consistent(db)


# --- 7. a make-up waits for a termination and is refused after it -------------------------------


async def test_a_make_up_racing_a_termination_books_nothing_on_a_terminated_contract(
    stack: Stack, db: Sessions
) -> None:
    """SD-4, SD-7 (race): the LP's make-up arrives while the contract's termination is under
    way. The make-up locks the contract row (as termination does), so it waits, then finds the
    contract terminated: contract_closed, and no live, unrefunded contract class is left."""
    api = stack.api
    chinese, foreign = await pair(api)
    s = await student(api, credits={"major": 10})
    first = next_week(await stack.now(), ZONE)
    r = await api.post("/v1/contracts", json=proposal(s, chinese, foreign, first), headers=LP)
    cid = r.json()["id"]
    now = await stack.now()
    lp = Actor(channel=Channel.lp, id="lp-1")

    async def make_up() -> object:
        async with db.begin() as session:
            return await contracts.make_up(
                session,
                contract_id=cid,
                role=Role.foreign,
                start_at=foreign_start(first) + DAY,
                actor=lp,
                now=now,
                rules=BookingRules(),
            )

    async with db.begin() as terminating:
        await contracts.close(
            terminating,
            contract_id=cid,
            state=ContractState.terminated,
            reason="moved abroad",
            actor=lp,
            now=now,
            rules=BookingRules(),
        )
        late = asyncio.create_task(make_up())
        await asyncio.wait({late}, timeout=1)  # the make-up gets as far as it can
    with pytest.raises(ContractClosed):
        await late
    live = await sql(
        db,
        "SELECT c.id FROM classes c JOIN timeslots t ON t.id = c.timeslot_id "
        "WHERE t.origin = :origin AND c.state = 'booked'",
        origin=f"contract-{cid}",
    )
    assert live == []
    await assert_money_consistent(db)


# --- 8. concurrent first saves of an auto-booking rule ------------------------------------------


async def test_eight_concurrent_first_saves_of_an_auto_booking_rule_all_succeed(
    api500: httpx.AsyncClient, db: Sessions
) -> None:
    """LP-1, SD-6 (race): eight saves of a student's first rule at once. The save is one
    INSERT ... ON CONFLICT DO UPDATE, so they take turns on the rule's row: all answer 200 and
    the last one wins, whole (its wishes, not a mix)."""
    api = api500
    t = await teacher(api)
    s = await student(api)
    bodies = [
        {
            "wishes": [
                {"weekday": "monday", "start": f"{10 + i}:00"},
                {"weekday": "friday", "start": f"{10 + i}:30"},
            ],
            "teacher_ids": [t],
            "any_teacher": i % 2 == 0,
        }
        for i in range(8)
    ]
    url = f"/v1/students/{s}/auto-booking-rule"
    answers = await asyncio.gather(*(api.put(url, json=b, headers=LP) for b in bodies))
    assert [outcome(r) for r in answers] == [(200, None)] * 8, [r.text for r in answers]
    saved = (await api.get(url, headers=LP)).json()
    wishes = [{"weekday": w["weekday"], "start": w["start"][:5]} for w in saved["wishes"]]
    assert [(b["wishes"], b["any_teacher"]) for b in bodies].count(
        (wishes, saved["any_teacher"])
    ) == 1
    assert await sql(db, "SELECT count(*) FROM booking_rules") == [(1,)]
    assert await sql(db, "SELECT count(*) FROM booking_wishes") == [(2,)]


# --- 4. a contract's first week has not begun --------------------------------------------------


async def test_a_contract_whose_first_week_has_begun_is_refused(stack: Stack, db: Sessions) -> None:
    """TCH-6, SD-7: W1 is booked at creation as a whole week. A contract whose first week has
    already begun (its Monday 00:00 local is past) is refused with 422 first_week_started
    (changing nothing); next week's Monday is the earliest."""
    api = stack.api
    chinese, foreign = await pair(api)
    s = await student(api, credits={"major": 4})
    this_week = week_of(await stack.now(), ZONE)
    details = await refused(
        api,
        db,
        "/v1/contracts",
        proposal(s, chinese, foreign, this_week),
        LP,
        422,
        "first_week_started",
    )
    assert details["earliest"] == (this_week + WEEK).isoformat()


# --- 11. a hold's expiry is bounded -------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered_after", "until_of"),
    [
        pytest.param(DAY, lambda now, start, expires: now - HOUR, id="in_the_past"),
        pytest.param(
            DAY, lambda now, start, expires: start + DAY + HOUR, id="after_the_last_offered_start"
        ),
        pytest.param(
            6 * DAY,
            lambda now, start, expires: expires - DAY + 7 * DAY + timedelta(minutes=30),
            id="past_the_longest_hold",
        ),
    ],
)
async def test_a_hold_is_extended_only_within_its_bounds(
    stack: Stack,
    db: Sessions,
    offered_after: timedelta,
    until_of: Callable[[datetime, datetime, datetime], datetime],
) -> None:
    """TCH-5: fireman's `until` is after now, no later than the start of the last offered slot
    (nothing is left to book after it), and at most teacher_cancel_hold_max (7 days) after the
    teacher's cancel: else 422 hold_until_out_of_range, and nothing changes. At the bound it
    is accepted."""
    api = stack.api
    t, _s, class_id, start = await booked_class(stack)
    hold = (await teacher_cancels(api, t, class_id, start + offered_after)).json()
    expires = datetime.fromisoformat(hold["expires_at"])
    until = until_of(await stack.now(), start, expires)
    url = f"/v1/teacher-cancels/{class_id}/extend"
    details = await refused(
        api, db, url, {"until": until.isoformat()}, FIREMAN, 422, "hold_until_out_of_range"
    )
    latest = datetime.fromisoformat(details["latest"])
    assert latest == min(start + offered_after, expires - DAY + 7 * DAY)
    r = await api.post(url, json={"until": latest.isoformat()}, headers=FIREMAN)
    assert r.status_code == 200, r.text
    assert datetime.fromisoformat(r.json()["expires_at"]) == latest


async def test_a_held_slot_is_never_held_past_its_start(stack: Stack, db: Sessions) -> None:
    """TCH-5: an offered slot is held at most until it starts: one offered 2 h ahead is held
    until its start, not for the hold's 24 h. PostgreSQL keeps it so
    (ck_timeslots_held_until_start), and a hold ends after it began
    (ck_teacher_cancels_expires_after_created)."""
    api = stack.api
    t, _s, class_id, start = await booked_class(stack)
    soon = on_grid(await stack.now(), 2 * HOUR + timedelta(minutes=30))
    hold = (await teacher_cancels(api, t, class_id, soon, start + DAY)).json()
    held = {o["start_at"]: o["expires_at"] for o in hold["offered"]}
    assert {datetime.fromisoformat(k): datetime.fromisoformat(v) for k, v in held.items()} == {
        soon: soon,
        start + DAY: datetime.fromisoformat(hold["expires_at"]),
    }
    with pytest.raises(IntegrityError, match="ck_timeslots_held_until_start"):
        await sql(
            db,
            "UPDATE timeslots SET expires_at = start_at + interval '1 second' "
            "WHERE origin = :origin",
            origin=f"teacher-cancel-{class_id}",
        )
    with pytest.raises(IntegrityError, match="ck_teacher_cancels_expires_after_created"):
        await sql(
            db,
            "UPDATE teacher_cancels SET expires_at = created_at WHERE class_id = :id",
            id=class_id,
        )


# --- 12. operation keys are kept for a retention, then cleaned up -------------------------------


async def test_expired_operation_keys_go_and_fresh_ones_stay(stack: Stack, db: Sessions) -> None:
    """Idempotency-Key answers and activity results (every POST, every flow step) are kept
    7 days: the hourly Schedule `operation-key-cleanup` runs OperationKeyCleanupWorkflow, which
    deletes the older ones in small batches and leaves the rest; a key still used by a
    running request is passed over."""
    now = await stack.now()
    ages = {f"old-{i}": timedelta(days=7, minutes=i + 1) for i in range(5)}
    ages |= {"fresh": timedelta(days=1), "almost": timedelta(days=7) - timedelta(minutes=5)}
    for key, age in ages.items():
        await sql(
            db,
            "INSERT INTO operation_keys (scope, key, request_hash, response, created_at) "
            "VALUES ('lp:lp-1', :key, 'h', '{}', :at)",
            key=key,
            at=now - age,
        )
    schedule = SCHEDULES["operation-key-cleanup"](stack.settings)
    assert isinstance(schedule.action, ScheduleActionStartWorkflow)
    assert schedule.action.workflow == OperationKeyCleanupWorkflow.__name__
    outcome = await stack.client.execute_workflow(
        OperationKeyCleanupWorkflow.run,
        KeyCleanup(retention=stack.settings.operation_key_retention, batch=2),
        id="operation-key-cleanup-1",
        task_queue=stack.settings.temporal_task_queue,
    )
    assert (outcome.deleted, outcome.batches) == (5, 3)
    left = await sql(db, "SELECT key FROM operation_keys ORDER BY key")
    assert left == [("almost",), ("fresh",)]


# --- 13. a real booking registers one student per parent account --------------------------------


async def test_ten_real_bookings_of_one_parent_account_make_one_student_and_one_trial(
    stack: Stack, db: Sessions
) -> None:
    """H5-10 (race): ten real bookings at once for one parent account (its id in the channel).
    PostgreSQL keeps one student per channel and account (uq_students_external_account) and one
    trial grant per student (uq_ledger_entries_one_trial_grant): one call registers, grants and
    books; the nine others answer 409 trial_already_booked and grant nothing. Another account
    of the same channel is another student; once the trial is cancelled, the same account books
    again with the same student and the credit it got back."""
    api = stack.api
    start = await start_in(stack, 2 * DAY)
    headers = as_("parent_h5", "wx-openid-7")

    def trial(account: str, at: datetime = start) -> dict[str, str]:
        return {"name": "新同学", "parent_account": account, "start_at": at.isoformat()}

    url = "/v1/overbooked-classes/real-booking"
    answers = await asyncio.gather(
        *(api.post(url, json=trial("wx-7"), headers=headers) for _ in range(10))
    )
    counted = Counter(outcome(r) for r in answers)
    assert counted == {(201, None): 1, (409, "trial_already_booked"): 9}, counted
    [booked] = [r.json() for r in answers if r.status_code == 201]
    s = booked["student_id"]
    assert {r.json()["details"]["student_id"] for r in answers if r.status_code == 409} == {s}
    assert await sql(db, "SELECT count(*) FROM students") == [(1,)]
    assert await sql(db, "SELECT count(*) FROM ledger_entries WHERE reason = 'trial_grant'") == [
        (1,)
    ]
    other = await api.post(url, json=trial("wx-8"), headers=headers)
    assert other.status_code == 201 and other.json()["student_id"] != s, other.text

    r = await api.post(f"/v1/classes/{booked['class_id']}/cancel", json={}, headers=CC)
    assert (r.status_code, r.json()["refunded"]) == (200, True), r.text
    again = await api.post(url, json=trial("wx-7", start + HOUR), headers=headers)
    assert (again.status_code, again.json()["student_id"]) == (201, s), again.text
    assert await sql(db, "SELECT count(*) FROM ledger_entries WHERE reason = 'trial_grant'") == [
        (2,)
    ]
    with pytest.raises(IntegrityError, match="uq_ledger_entries_one_trial_grant"):
        await sql(
            db,
            "INSERT INTO ledger_entries (student_id, asset, key, delta, reason, channel, "
            "actor_id, occurred_at) VALUES (:s, 'credit', 'trial', 1, 'trial_grant', 'cc', "
            "'cc-1', now())",
            s=s,
        )
    await assert_money_consistent(db)
