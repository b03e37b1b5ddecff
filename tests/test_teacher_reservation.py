"""Teacher reservation (占老师, SD-5b): demand × factor per half hour, teachers chosen by the
documented strategy, excess given back, safe to run twice at once; and its Schedule.

covers: SD-5b
"""

import asyncio
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select

from domain.channels import Actor, Channel
from domain.overbooking import OverbookingRules, OverbookKind, ReservationOutcome
from domain.payment import Payment
from domain.rules import BookingRules
from domain.words import CourseType
from store import overbooking
from store.db import Sessions
from store.models import Class, Timeslot
from tests.conftest import T0
from tests.helpers import CC, open_slots, student, teacher
from yueke.schedules import SCHEDULES
from yueke.settings import Settings

HOUR = timedelta(hours=1)
RULES = OverbookingRules()


async def pool_at(db: Sessions, start: datetime) -> list[int]:
    async with db() as session:
        rows = await session.scalars(
            select(Timeslot.teacher_id).where(
                Timeslot.start_at == start,
                Timeslot.state == "open",
                Timeslot.direction == "overbook_pool",
            )
        )
        return sorted(rows)


async def run(db: Sessions, now: datetime) -> ReservationOutcome:
    async with db.begin() as session:
        return await overbooking.reserve_teachers(session, now=now, rules=RULES)


async def test_reserves_demand_times_factor_twice_at_once_without_over_reserving(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    start = T0 + 2 * HOUR
    teachers = [await teacher(api, course_types=("trial",)) for _ in range(20)]
    for t in teachers:
        await open_slots(api, t, start)
    students = [await student(api, credits={"trial": 1}) for _ in range(10)]
    await _overbook(db, students, start)

    first, second = await asyncio.gather(run(db, T0), run(db, T0))
    # ceil(10 × 1.2) = 12, whichever run came first; the other finds nothing to do.
    assert sorted([first.reserved, second.reserved]) == [0, 12]
    assert first.demand == second.demand == 10
    assert len(await pool_at(db, start)) == 12
    async with db() as session:
        doubled = await session.scalar(
            select(func.count()).select_from(
                select(Timeslot.teacher_id, Timeslot.start_at)
                .where(Timeslot.state != "removed")
                .group_by(Timeslot.teacher_id, Timeslot.start_at)
                .having(func.count() > 1)
                .subquery()
            )
        )
    assert doubled == 0

    # Demand falls (5 classes cancelled by their students): the excess goes back.
    async with db.begin() as session:
        rows = (await session.scalars(select(Class).where(Class.start_at == start))).all()
        for cls in rows[:5]:
            cls.state = "cancelled"
            cls.refunded = False
    again = await run(db, T0 + HOUR)
    assert (again.demand, again.released, again.reserved) == (5, 6, 0)
    assert len(await pool_at(db, start)) == 6


async def test_specialists_first_then_least_loaded(api: httpx.AsyncClient, db: Sessions) -> None:
    """Strategy: fewest course types first, then fewest classes within 12 h of the start."""
    start = T0 + 3 * HOUR
    versatile = await teacher(api, course_types=("trial", "major", "special"))
    busy = await teacher(api, course_types=("trial",))
    idle = await teacher(api, course_types=("trial",))
    for t in (versatile, busy, idle):
        await open_slots(api, t, start)
    [earlier] = await open_slots(api, busy, start - HOUR)
    r = await api.post(
        "/v1/classes",
        json={
            "student_id": await student(api, credits={"trial": 1}),
            "timeslot_id": earlier,
            "course_type": "trial",
        },
        headers=CC,
    )
    assert r.status_code == 201, r.text
    await _overbook(db, [await student(api, credits={"trial": 1})], start)
    outcome = await run(db, T0)
    assert (outcome.demand, outcome.reserved, outcome.short) == (1, 2, 0)
    assert await pool_at(db, start) == sorted([idle, busy])


def test_the_schedule_runs_at_28_and_58_in_shanghai() -> None:
    schedule = SCHEDULES["teacher-reservation"](Settings())
    [calendar] = schedule.spec.calendars
    assert [(r.start, r.end) for r in calendar.minute] == [(28, 28), (58, 58)]
    assert [(r.start, r.end) for r in calendar.hour] == [(0, 23)]
    assert [(r.start, r.end) for r in calendar.second] == [(0, 0)]
    assert schedule.spec.time_zone_name == "Asia/Shanghai"
    moved = Settings(rules={"overbooking": {"reservation_minutes": [25, 55]}})
    [calendar] = SCHEDULES["teacher-reservation"](moved).spec.calendars
    assert [r.start for r in calendar.minute] == [25, 55]


async def _overbook(db: Sessions, students: list[int], start: datetime) -> None:
    """Over-booked classes straight through the store: no flows are needed here."""
    for s in students:
        async with db.begin() as session:
            await overbooking.book(
                session,
                student_id=s,
                start_at=start,
                course_type=CourseType.trial,
                payment=Payment(),
                kind=OverbookKind.overbook,
                actor=Actor(channel=Channel.cc, id="cc-1"),
                now=T0,
                rules=BookingRules(),
            )
