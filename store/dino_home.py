"""Dino-home worry-free priority booking (SD-3, LP-7): only students with a finished class in
the current business week (Mon–Sun, Asia/Shanghai) qualify; the LP then books an open slot or
requests a time for each of them."""

from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import NotEligible
from domain.rules import BookingRules
from domain.weekly import WEEK, week_of, week_start
from domain.words import ClassState
from store.models import Class
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
