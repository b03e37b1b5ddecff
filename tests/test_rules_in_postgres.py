"""Rules PostgreSQL keeps, whatever runs at once (issue 9): CHECK constraints, partial unique
indexes, conditional updates and row locks, each with the race or the state that broke it.

covers: PAR-1, PAR-3, TCH-3, TCH-5, SD-4, SD-6, LP-1, H5-10, TMK-1
"""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from domain.channels import Actor, Channel
from domain.errors import HoldClosed
from domain.words import HoldState, TimeslotState
from store import holds
from store.db import Sessions
from tests.conftest import T0, Stack
from tests.helpers import (
    assert_money_consistent,
    book,
)
from tests.test_teacher_cancel_flow import booked_class, teacher_cancels

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
            await holds.extend_hold(extension, class_id, now + 2 * DAY, FIREMAN_ACTOR, now)
    async with db() as session:
        record = await holds.get_hold(session, class_id)
        assert (record.state, record.booked_class_id) == (HoldState.booked, r.json()["id"])
        assert record.expires_at == datetime.fromisoformat(hold["expires_at"])
        states = {slot.id: slot.state for slot in await holds.offered_slots(session, class_id)}
    assert states == {first: TimeslotState.booked, second: TimeslotState.removed}
    await assert_money_consistent(db)
