"""The business week (Mon–Sun, Asia/Shanghai) and the weekly jobs' times (docs/rules.md).

Pure functions on instants and dates; activities call them, workflows only compare the instants
they return (zone data stays out of the workflow sandbox).
"""

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from domain.rules import BookingRules
from domain.values import LocalTime

WEEK = timedelta(weeks=1)


class Weekday(StrEnum):
    """Named so that an API caller never wonders whether Monday is 0 or 1."""

    monday = "monday"
    tuesday = "tuesday"
    wednesday = "wednesday"
    thursday = "thursday"
    friday = "friday"
    saturday = "saturday"
    sunday = "sunday"

    @property
    def number(self) -> int:
        """Days after Monday, as `date.weekday()` counts."""
        return list(Weekday).index(self)


# Students per weekly booking activity (its parts one transaction each). Per chunk, the fixed
# costs (the activity's round trip through Temporal, a statement per step, and for any-teacher
# wishes the count of every teacher's classes of the week) are paid once; a bigger chunk holds
# its slot locks longer (figures in bench/README.md).
CHUNK = 4000


class WeeklyJobs(BaseModel):
    """When the supply-demand Schedules fire, in the business time zone (settings.weekly)."""

    # SD-1: exclusive-teacher students' classes for next week; Level 7 first, at midnight.
    exclusive_booking_at: LocalTime = time(8, 0)
    exclusive_l7_booking_at: LocalTime = time(0, 0)
    # SD-6: auto-booking of the following Monday–Sunday.
    auto_booking_at: LocalTime = time(12, 3)
    # Students per auto-booking activity.
    auto_booking_chunk: int = CHUNK


def week_of(moment: datetime, zone: str) -> date:
    """The Monday (a local date) of the business week that contains moment."""
    local = moment.astimezone(ZoneInfo(zone)).date()
    return local - timedelta(days=local.weekday())


def next_week(moment: datetime, zone: str) -> date:
    return week_of(moment, zone) + WEEK


def at(week: date, weekday: int, start: time, zone: str) -> datetime:
    """The UTC instant of a local weekday and time in the week starting on Monday `week`."""
    local = datetime.combine(week + timedelta(days=weekday), start, ZoneInfo(zone))
    return local.astimezone(UTC)


def week_start(week: date, zone: str) -> datetime:
    return at(week, 0, time(0), zone)


def dino_home_window(now: datetime, rules: BookingRules) -> tuple[datetime, datetime]:
    """This week's dino-home window (SD-3): from Monday's `dino_home_priority_from` until its
    `dino_home_priority_until` (the auto-booking run), business time; next week's general slots
    are kept for dino-home students in it."""
    week = week_of(now, rules.business_time_zone)
    zone = rules.business_time_zone
    return (
        at(week, 0, rules.dino_home_priority_from, zone),
        at(week, 0, rules.dino_home_priority_until, zone),
    )


def is_monday(day: date) -> bool:
    return day.weekday() == 0


def on_half_hour(start: time) -> bool:
    return start.minute in (0, 30) and start.second == 0 and start.microsecond == 0
