"""Demo data for `yueke dev --demo`: enough to book a class with curl within a minute."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from domain.channels import Actor, Channel
from domain.rules import BookingRules
from domain.words import Asset, CourseType, TeacherKind
from store import inventory, ledger, people
from store.db import Sessions
from store.models import Teacher

TEACHERS = [
    (
        "Emma (foreign)",
        TeacherKind.foreign,
        [CourseType.major, CourseType.trial, CourseType.special],
    ),
    (
        "Liam (foreign)",
        TeacherKind.foreign,
        [CourseType.major, CourseType.l7_major, CourseType.advanced],
    ),
    # A Chinese teacher teaches the Chinese half of all-round advanced and of contracts only.
    ("Wang Fang (Chinese)", TeacherKind.chinese, [CourseType.advanced]),
]
# Evenings in Beijing (UTC+8): 18:00-21:00 local is 10:00-13:00 UTC.
DAILY_STARTS_UTC = [timedelta(hours=10, minutes=30 * i) for i in range(6)]


async def load(sessions: Sessions, rules: BookingRules, now: datetime | None = None) -> str:
    """Idempotent: a database that already has teachers is left as it is."""
    now = now or datetime.now(UTC)
    actor = Actor(channel=Channel.fireman, id="demo")
    async with sessions.begin() as session:
        if await session.scalar(select(func.count()).select_from(Teacher)):
            return "demo data already loaded"
        tomorrow = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
        starts = [tomorrow + timedelta(days=d) + t for d in range(7) for t in DAILY_STARTS_UTC]
        for name, kind, course_types in TEACHERS:
            teacher = await people.register_teacher(
                session,
                name=name,
                kind=kind,
                time_zone="UTC",
                course_types=course_types,
                now=now,
            )
            await inventory.open_timeslots(
                session, teacher_id=teacher.id, starts=starts, actor=actor, now=now, rules=rules
            )
        for name in ("Xiaoming", "Xiaohong"):
            student = await people.register_student(
                session,
                name=name,
                level=3,
                time_zone="Asia/Shanghai",
                exclusive_teacher_id=None,
                now=now,
            )
            await ledger.grant(session, student.id, Asset.credit, 10, CourseType.major, actor, now)
            await ledger.grant(session, student.id, Asset.stones, 500, None, actor, now)
            await ledger.grant_coupon(
                session, student.id, CourseType.major, now + timedelta(days=30), actor, now
            )
    return (
        f"demo data: {len(TEACHERS)} teachers (ids 1-3) with {len(starts)} open slots each "
        "from tomorrow 10:00 UTC; students 1 and 2 with 10 major credits, 500 stones and one "
        "major coupon each"
    )
