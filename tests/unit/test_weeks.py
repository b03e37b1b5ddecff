"""The business week: Monday to Sunday in Asia/Shanghai, not in UTC. Weekly jobs, contracts
and auto-booking wishes are written in local time and turned into UTC instants."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.rules import BookingRules
from domain.weekly import (
    WEEK,
    Weekday,
    at,
    is_monday,
    next_week,
    on_half_hour,
    week_of,
    week_start,
)

ZONE = BookingRules().business_time_zone
SHANGHAI = ZoneInfo(ZONE)
MONDAY = date(2030, 1, 7)


def test_business_zone_is_shanghai() -> None:
    assert ZONE == "Asia/Shanghai"


def test_the_week_begins_on_monday_midnight_in_shanghai() -> None:
    """covers: SD-6, TCH-6. Monday 00:00 in Shanghai is Sunday 16:00 UTC."""
    begins = week_start(MONDAY, ZONE)
    assert begins == datetime(2030, 1, 6, 16, 0, tzinfo=UTC)
    assert begins.astimezone(SHANGHAI).replace(tzinfo=None) == datetime(2030, 1, 7)


def test_sunday_evening_utc_is_already_next_week_in_shanghai() -> None:
    """covers: SD-6. Sunday 16:00 UTC is Monday 00:00 in Shanghai; one second earlier is
    still the week before."""
    begins = week_start(MONDAY, ZONE)
    assert begins.weekday() == 6  # a Sunday in UTC
    assert week_of(begins, ZONE) == MONDAY
    assert week_of(begins - timedelta(seconds=1), ZONE) == MONDAY - WEEK


def test_monday_morning_utc_is_still_the_same_week() -> None:
    """Monday 10:00 UTC is Monday 18:00 in Shanghai: the week that began that Monday."""
    assert week_of(datetime(2030, 1, 7, 10, tzinfo=UTC), ZONE) == MONDAY


@pytest.mark.parametrize("day", range(7))
def test_every_moment_of_the_week_belongs_to_its_monday(day: int) -> None:
    """covers: SD-6"""
    for hour in (0, 12, 23):
        local = datetime.combine(MONDAY + timedelta(days=day), time(hour, 59), SHANGHAI)
        assert week_of(local, ZONE) == MONDAY
        assert week_of(local.astimezone(UTC), ZONE) == MONDAY
        assert next_week(local, ZONE) == MONDAY + WEEK


def test_week_of_is_always_a_monday() -> None:
    moment = datetime(2030, 3, 1, 7, 30, tzinfo=UTC)
    for _ in range(48):
        assert is_monday(week_of(moment, ZONE))
        moment += timedelta(hours=37)


def test_at_turns_a_local_weekday_and_time_into_utc() -> None:
    """covers: TCH-6, LP-1. Sunday 23:30 in Shanghai is Sunday 15:30 UTC; Monday 07:00 in
    Shanghai is Sunday 23:00 UTC, in the week before by UTC's calendar."""
    assert at(MONDAY, Weekday.sunday.number, time(23, 30), ZONE) == datetime(
        2030, 1, 13, 15, 30, tzinfo=UTC
    )
    assert at(MONDAY, Weekday.monday.number, time(7, 0), ZONE) == datetime(
        2030, 1, 6, 23, 0, tzinfo=UTC
    )


def test_at_in_another_zone() -> None:
    """The zone is a setting: the same local time is another instant elsewhere."""
    assert at(MONDAY, 0, time(9), "UTC") == datetime(2030, 1, 7, 9, tzinfo=UTC)
    assert at(MONDAY, 0, time(9), "UTC") - at(MONDAY, 0, time(9), ZONE) == timedelta(hours=8)


def test_weekday_index_counts_from_monday() -> None:
    """covers: LP-1, SD-1. An API caller names the day; the index matches date.weekday()."""
    for offset in range(7):
        day = MONDAY + timedelta(days=offset)
        assert list(Weekday)[day.weekday()].number == day.weekday()
    assert Weekday("monday").number == MONDAY.weekday()


def test_is_monday() -> None:
    assert is_monday(MONDAY)
    assert not any(is_monday(MONDAY + timedelta(days=d)) for d in range(1, 7))


@pytest.mark.parametrize(
    ("start", "ok"),
    [
        (time(8, 0), True),
        (time(23, 30), True),
        (time(8, 15), False),
        (time(8, 0, 1), False),
        (time(8, 30, 0, 1), False),
    ],
)
def test_weekly_times_are_on_the_half_hour(start: time, ok: bool) -> None:
    """covers: LP-1, TCH-6"""
    assert on_half_hour(start) is ok
