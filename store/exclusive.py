"""The exclusive-teacher priority window (SD-2, H5-8), as a condition the booking guard adds.

Until Monday 08:30 (settings: rules.exclusive_priority_until) Asia/Shanghai, the general slots
of the following Monday–Sunday of a teacher who is someone's exclusive teacher are kept for
that teacher's own exclusive students: the Monday 08:00 run (Level 7: 00:00) books them first,
and the students may book them themselves. From 08:30 anyone may.
"""

from datetime import datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.sql.elements import ColumnElement

from domain.rules import BookingRules
from store.models import Student, Timeslot


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
