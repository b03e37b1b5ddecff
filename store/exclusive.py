"""The exclusive-teacher priority window (SD-2, H5-8), as a condition the booking guard adds.

Until Monday 08:30 (settings: rules.exclusive_priority_until) Asia/Shanghai, the general slots
of the following Monday–Sunday of a teacher who is someone's exclusive teacher are kept for
that teacher's own exclusive students: the Monday 08:00 run (Level 7: 00:00) books them first,
and the students may book them themselves. From 08:30 anyone may.
"""

from datetime import date, datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from domain.auto_booking import RuleView
from domain.errors import NotFound
from domain.rules import BookingRules
from domain.weekly import WEEK, at, week_of
from store import auto_booking
from store.models import Student, Timeslot
from store.people import get_student


def kept_from(student_id: int, now: datetime, rules: BookingRules) -> ColumnElement[bool]:
    """True for a slot still kept for an exclusive teacher's students, this student not one."""
    zone = rules.business_time_zone
    until = rules.exclusive_priority_until
    slot_week = func.date_trunc("week", func.timezone(zone, Timeslot.start_at))
    window_ends = func.timezone(
        zone, slot_week - timedelta(days=7) + timedelta(hours=until.hour, minutes=until.minute)
    )
    own_teacher = (
        select(Student.exclusive_teacher_id).where(Student.id == student_id).scalar_subquery()
    )
    exclusive_teachers = select(Student.exclusive_teacher_id).where(
        Student.exclusive_teacher_id.is_not(None)
    )
    return and_(
        window_ends > now,
        Timeslot.teacher_id.in_(exclusive_teachers),
        Timeslot.teacher_id.is_distinct_from(own_teacher),
    )


class PriorityWindow(BaseModel):
    """The window of one week (H5-8): that week's slots of exclusive teachers are kept for
    their own exclusive students until `until` (Monday of the week before, 08:30 local)."""

    week: date = Field(description="the Monday (business time zone) of the week")
    open: bool = Field(description="the week's slots are still kept for exclusive students")
    until: datetime = Field(description="when the week's slots stop being kept (UTC)")


class ExclusiveView(BaseModel):
    """H5-7, H5-8: the student's exclusive teacher, weekly pattern and priority windows."""

    student_id: int
    teacher_id: int | None = Field(description="null: the student has no exclusive teacher")
    rule: RuleView | None = Field(description="the weekly pattern SD-1 books, if any")
    windows: list[PriorityWindow] = Field(
        description="next week's window and the week after's; each later week is kept "
        "likewise until 08:30 on the Monday before it"
    )


def windows(now: datetime, rules: BookingRules) -> list[PriorityWindow]:
    """Next week's window and the week after's, as `kept_from` keeps them."""
    zone = rules.business_time_zone
    this_week = week_of(now, zone)
    out = []
    for week in (this_week + WEEK, this_week + 2 * WEEK):
        until = at(week - WEEK, 0, rules.exclusive_priority_until, zone)
        out.append(PriorityWindow(week=week, open=now < until, until=until))
    return out


async def exclusive_of(
    session: AsyncSession, student_id: int, now: datetime, rules: BookingRules
) -> ExclusiveView:
    student = await get_student(session, student_id)
    try:
        rule: RuleView | None = await auto_booking.get_rule(session, student_id, "exclusive")
    except NotFound:
        rule = None
    return ExclusiveView(
        student_id=student.id,
        teacher_id=student.exclusive_teacher_id,
        rule=rule,
        windows=windows(now, rules),
    )
