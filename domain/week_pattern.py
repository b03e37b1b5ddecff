"""A teacher's week pattern (TCH-1): weekdays and starts in the teacher's own time zone, turned
into UTC slot starts week by week, so that "Mondays 19:00" in America/New_York is Monday 23:00
UTC in summer time and Tuesday 00:00 UTC in winter time.

A local start that does not exist that day (the hour skipped when clocks go forward) has no
slot; one that happens twice (the hour repeated when clocks go back) is its first occurrence.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from domain.weekly import WEEK, Weekday


class PatternTime(BaseModel):
    weekday: Weekday
    start: time


class LocalStart(BaseModel):
    """One start of the pattern: its local wall-clock time and, if it exists, its UTC instant."""

    local: datetime  # with the zone's offset that day (the wall-clock time if it does not exist)
    start_at: datetime | None  # UTC; None if the local time does not exist that day


def local_starts(
    first_week: date, weeks: int, times: list[PatternTime], zone: str
) -> list[LocalStart]:
    """Every start of the pattern, week by week, in time order, each once."""
    tz = ZoneInfo(zone)
    seen: set[datetime] = set()
    out: list[LocalStart] = []
    for week in range(weeks):
        monday = first_week + week * WEEK
        for t in times:
            wall = datetime.combine(monday + timedelta(days=t.weekday.number), t.start)
            local = wall.replace(tzinfo=tz, fold=0)
            utc = local.astimezone(UTC)
            if utc.astimezone(tz).replace(tzinfo=None) != wall:
                # Skipped by a change to summer time: no such wall-clock time that day.
                out.append(LocalStart(local=local, start_at=None))
                continue
            if utc in seen:
                continue
            seen.add(utc)
            out.append(LocalStart(local=utc.astimezone(tz), start_at=utc))
    out.sort(key=lambda s: (s.start_at or s.local.astimezone(UTC), s.local.isoformat()))
    return out
