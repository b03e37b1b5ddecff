"""A weekly booking chunk in parts, one transaction each, side by side (the activity books a
chunk so, store.auto_booking.book_chunk_parts): the same bookings as one transaction, and a
retry books only the parts that did not commit.

covers: SD-6
"""

import dataclasses
from datetime import time, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.testing import ActivityEnvironment

from activities import auto_booking as chunk_activities
from activities.auto_booking import WeeklyBookingActivities
from domain.auto_booking import BookChunk, RunKind, RunRequest, RunView, Wish
from domain.channels import Actor, Channel
from domain.rules import BookingRules
from domain.weekly import Weekday, at, next_week
from domain.words import CourseType
from store import auto_booking
from store.db import Sessions
from tests.conftest import T0

RULES = BookingRules()
LP = Actor(channel=Channel.lp, id="lp")
ZONE = "Asia/Shanghai"
NOW = T0 + timedelta(days=2)
WEEK = next_week(NOW, ZONE)
TEACHERS = range(9001, 9007)
STUDENTS = range(9001, 9041)
# Mondays 19:00-20:30: four half hours, so both parts of a chunk have wishes.
STARTS = [time(19, 0), time(19, 30), time(20, 0), time(20, 30)]


async def seed(db: Sessions) -> RunView:
    """Six teachers open at four times (the last teacher only at two); forty students, each
    with two wished times among the four, preferred teachers that overlap, most letting any
    teacher do; every fifth with one credit only."""
    async with db.begin() as session:
        await session.execute(
            text(
                """
                INSERT INTO teachers (id, name, kind, time_zone, course_types, created_at)
                SELECT g, 'T', 'foreign', 'UTC', ARRAY['major'], :now
                FROM generate_series(9001, 9006) g
                """
            ),
            {"now": NOW},
        )
        for t in TEACHERS:
            for n, start in enumerate(STARTS):
                if t == 9006 and n % 2:
                    continue
                await session.execute(
                    text(
                        """INSERT INTO timeslots (teacher_id, start_at, state, direction,
                           created_at, updated_at) VALUES (:t, :s, 'open', 'general', :n, :n)"""
                    ),
                    {"t": t, "s": at(WEEK, 0, start, ZONE), "n": NOW},
                )
        await session.execute(
            text(
                """
                INSERT INTO students (id, name, level, time_zone, created_at)
                SELECT g, 'S', 1, 'Asia/Shanghai', :now FROM generate_series(9001, 9040) g
                """
            ),
            {"now": NOW},
        )
        await session.execute(
            text(
                """
                INSERT INTO accounts (student_id, asset, key, balance)
                SELECT g, 'credit', 'major', CASE WHEN g % 5 = 0 THEN 1 ELSE 2 END
                FROM generate_series(9001, 9040) g
                """
            )
        )
        await session.execute(
            text(
                """
                INSERT INTO ledger_entries (student_id, asset, key, delta, reason, channel,
                                            actor_id, occurred_at)
                SELECT g, 'credit', 'major', CASE WHEN g % 5 = 0 THEN 1 ELSE 2 END, 'grant',
                       'lp', 'lp', :now
                FROM generate_series(9001, 9040) g
                """
            ),
            {"now": NOW},
        )
    for s in STUDENTS:
        async with db.begin() as session:
            await auto_booking.save_rule(
                session,
                student_id=s,
                kind="auto",
                wishes=[
                    Wish(weekday=Weekday.monday, start=STARTS[s % 4]),
                    Wish(weekday=Weekday.monday, start=STARTS[(s + 1) % 4]),
                ],
                teacher_ids=[9001 + s % 3, 9004 + s % 2][: 1 + s % 2],
                any_teacher=s % 7 != 0,
                course_type=CourseType.major,
                active=True,
                actor=LP,
                now=NOW,
            )
    async with db.begin() as session:
        return await auto_booking.start_run(
            session, RunRequest(kind=RunKind.auto, actor=LP), flow_id="t", now=NOW, rules=RULES
        )


RESULTS = """
SELECT r.student_id, r.position, r.teacher_id, r.reason, c.timeslot_id
FROM booking_results r LEFT JOIN classes c ON c.id = r.class_id
"""


async def booked(session: AsyncSession) -> set[tuple[Any, ...]]:
    return {tuple(row) for row in await session.execute(text(RESULTS))}


def chunk(run: RunView, round_: int, first: int, size: int) -> BookChunk:
    return BookChunk(run_id=run.id, round=round_, first=first, size=size, actor=LP, now=NOW)


async def test_a_chunk_in_parts_books_what_one_transaction_books(db: Sessions) -> None:
    """Each round's chunk in two parts (rolled back), then in one transaction (kept): every
    result (teacher, slot, reason) is the same, preferences and the any-teacher spread
    included."""
    run = await seed(db)
    reasons: set[str | None] = set()
    for round_ in (1, 2):
        step = chunk(run, round_, 0, run.students)
        parts = {p: db() for p in range(2)}
        try:
            outcomes = await auto_booking.book_chunk_parts(parts, step, RULES, parts=2)
            assert {p for p, o in outcomes.items() if o.students} == {0, 1}
            in_parts = {
                r for session in parts.values() for r in await booked(session) if r[1] == round_
            }
        finally:
            for session in parts.values():
                await session.close()
        async with db.begin() as session:
            await auto_booking.book_chunk(session, step, RULES)
            at_once = await booked(session)
        assert in_parts == {r for r in at_once if r[1] == round_}
        assert len(in_parts) == len(STUDENTS)
        reasons |= {r[3] for r in in_parts}
    assert reasons == {None, "insufficient_balance", "no_free_teacher", "preferred_teachers_busy"}


def step_env(activity_id: str) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, workflow_id="weekly-1", workflow_run_id="run-1", activity_id=activity_id
    )
    return env


async def test_a_retried_chunk_books_only_the_parts_that_did_not_commit(
    db: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second part fails after the first committed: the retry returns the first part's
    outcome from its key and books the second part once; every wish has one result, the run's
    counts add up."""
    run = await seed(db)
    activities = WeeklyBookingActivities(db, RULES)
    step = chunk(run, 1, 0, run.students)
    count = auto_booking.count_chunk
    calls = 0

    async def second_fails(session: AsyncSession, run_id: int, outcome: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("lost the connection")
        await count(session, run_id, outcome)

    monkeypatch.setattr(auto_booking, "count_chunk", second_fails)
    with pytest.raises(ConnectionError):
        await step_env("3").run(activities.book_run_chunk, step)
    async with db() as session:
        first = await session.scalar(text("SELECT count(*) FROM booking_results"))
    assert 0 < first < run.students

    outcome = await step_env("3").run(activities.book_run_chunk, step)
    assert calls == 3
    assert outcome.students == run.students == outcome.booked + outcome.failed
    async with db() as session:
        results = await session.scalar(text("SELECT count(*) FROM booking_results"))
        counted = (await session.execute(text("SELECT booked, failed FROM booking_runs"))).one()
    assert results == run.students
    assert tuple(counted) == (outcome.booked, outcome.failed)
    assert chunk_activities.PARTS == 2
