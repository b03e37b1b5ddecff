"""Dino-home worry-free priority booking (SD-3, LP-7): only students with a finished class in
the current business week (Mon–Sun, Asia/Shanghai) qualify; the LP then books an open slot or
requests a time for each of them.

The dino-home window (`kept_from`, `KEPT_SQL`): from Monday 00:00 until the auto-booking run at
12:03 (settings: rules.dino_home_priority_from / _until, Asia/Shanghai), the following
Monday–Sunday's general slots are kept for dino-home students (a finished class in the current
or the previous business week) and, for an exclusive teacher's slot, that teacher's own
exclusive students. Both booking paths and availability leave them to those students.
"""

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from domain.errors import NotEligible
from domain.rules import BookingRules
from domain.weekly import WEEK, week_of, week_start
from domain.words import ClassState, Direction
from store.models import Class, Student, Timeslot
from store.people import get_student


def current_week(now: datetime, rules: BookingRules) -> date:
    return week_of(now, rules.business_time_zone)


async def eligible(
    session: AsyncSession, student_ids: Iterable[int], now: datetime, rules: BookingRules
) -> set[int]:
    """Those of the students with a finished class that starts in the current week."""
    wanted = set(student_ids)
    if not wanted:
        return set()
    start = week_start(current_week(now, rules), rules.business_time_zone)
    rows = await session.scalars(
        select(Class.student_id)
        .where(
            Class.student_id.in_(wanted),
            Class.state == ClassState.finished,
            Class.start_at >= start,
            Class.start_at < start + WEEK,
        )
        .distinct()
    )
    return set(rows)


async def check_eligible(
    session: AsyncSession, student_id: int, qualified: set[int], now: datetime, rules: BookingRules
) -> None:
    """NotEligible (or student_not_found) unless the student is among the qualified."""
    if student_id in qualified:
        return
    await get_student(session, student_id)
    raise NotEligible(
        "dino-home priority is for students with a finished class this week",
        student_id=student_id,
        week=current_week(now, rules).isoformat(),
    )


def _since_midnight(at: time) -> timedelta:
    return timedelta(hours=at.hour, minutes=at.minute, seconds=at.second)


def kept_from(student_id: int, now: datetime, rules: BookingRules) -> ColumnElement[bool]:
    """True for a slot the dino-home window keeps now, this student not one it is kept for."""
    zone = rules.business_time_zone
    slot_week = func.date_trunc("week", func.timezone(zone, Timeslot.start_at))
    monday_before = slot_week - timedelta(days=7)
    opens = func.timezone(zone, monday_before + _since_midnight(rules.dino_home_priority_from))
    closes = func.timezone(zone, monday_before + _since_midnight(rules.dino_home_priority_until))
    own_teacher = (
        select(Student.exclusive_teacher_id).where(Student.id == student_id).scalar_subquery()
    )
    since = week_start(current_week(now, rules) - WEEK, zone)
    finished = exists().where(
        Class.student_id == student_id,
        Class.state == ClassState.finished,
        Class.start_at >= since,
        Class.start_at < now,
    )
    return and_(
        Timeslot.direction == Direction.general,
        opens <= now,
        closes > now,
        Timeslot.teacher_id.is_distinct_from(own_teacher),
        ~finished,
    )


def kept_sql(slot: str, student: str, now: str, zone: str, opens: str, closes: str) -> str:
    """`kept_from` as SQL text for the one-statement queries: the slot's alias and the
    placeholders of the student, now, the time zone and the window's bounds (intervals)."""
    week = f"date_trunc('week', timezone({zone}, {slot}.start_at)) - interval '7 days'"
    return f"""(
        {slot}.direction = 'general'
        AND timezone({zone}, {week} + {opens}::interval) <= {now}
        AND timezone({zone}, {week} + {closes}::interval) > {now}
        AND {slot}.teacher_id IS DISTINCT FROM (
            SELECT k.exclusive_teacher_id FROM students AS k WHERE k.id = {student}::bigint)
        AND NOT EXISTS (
            SELECT 1 FROM classes AS f
            WHERE f.student_id = {student}::bigint AND f.state = 'finished'
              AND f.start_at < {now}
              AND f.start_at >= timezone(
                  {zone}, date_trunc('week', timezone({zone}, {now})) - interval '7 days')))"""


def window(rules: BookingRules) -> tuple[timedelta, timedelta]:
    """The window's bounds after Monday 00:00, as the `kept_sql` intervals take them."""
    return (
        _since_midnight(rules.dino_home_priority_from),
        _since_midnight(rules.dino_home_priority_until),
    )
