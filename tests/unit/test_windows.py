"""Booking windows: when a teacher may open a slot, a student book one, a class be requested or
over-booked. Each window is closed at both ends: exactly the lead and exactly the limit ahead
are allowed, one second beyond is refused."""

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InPast, OffGrid, OutsideWindow
from domain.overbooking import OverbookingRules, check_can_overbook
from domain.rules import (
    BookingRules,
    check_can_request,
    check_on_grid,
    check_student_can_book,
    check_teacher_can_open,
)
from domain.window import check_window

RULES = BookingRules()
SECOND = timedelta(seconds=1)
# A Monday, 10:00 UTC: on the grid, so that "now + a whole number of half hours" is too.
NOW = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)


def test_window_allows_both_ends_and_refuses_just_outside() -> None:
    """The generic window every booking path shares (one check for bookings, requests and
    over-booked classes)."""
    lead, ahead = timedelta(hours=1), timedelta(days=3)
    for start in (NOW + lead, NOW + ahead, NOW + lead + SECOND, NOW + ahead - SECOND):
        check_window(start, NOW, lead=lead, ahead=ahead, what="x")
    for start in (NOW + lead - SECOND, NOW + ahead + SECOND):
        with pytest.raises(OutsideWindow) as refused:
            check_window(start, NOW, lead=lead, ahead=ahead, what="x")
        assert refused.value.details == {
            "start_at": start.isoformat(),
            "earliest": (NOW + lead).isoformat(),
            "latest": (NOW + ahead).isoformat(),
        }


@pytest.mark.parametrize("before", [timedelta(0), SECOND, timedelta(days=400)])
def test_a_start_now_or_earlier_is_in_the_past_not_outside_the_window(before: timedelta) -> None:
    """Starting now counts as the past: the caller gets in_past, the clearer refusal."""
    with pytest.raises(InPast):
        check_window(NOW - before, NOW, lead=timedelta(0), ahead=timedelta(days=1), what="x")


def test_zero_lead_allows_the_next_instant() -> None:
    check_window(NOW + SECOND, NOW, lead=timedelta(0), ahead=timedelta(days=1), what="x")


# --- the grid ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start",
    [
        "2030-01-10T10:00:00+00:00",
        "2030-01-10T10:30:00+00:00",
        "2030-01-10T18:30:00+08:00",  # 10:30 UTC, as a parent in Shanghai sends it
        "2030-01-10T05:15:00+05:45",  # 23:30 UTC the day before
        "2030-01-10T00:00:00-09:30",  # 09:30 UTC
    ],
)
def test_on_the_grid_in_any_offset(start: str) -> None:
    """covers: TCH-1. The grid is :00/:30 in UTC, whatever offset the caller writes."""
    check_on_grid(datetime.fromisoformat(start))


@pytest.mark.parametrize(
    "start",
    [
        "2030-01-10T10:15:00+00:00",
        "2030-01-10T10:00:01+00:00",
        "2030-01-10T10:00:00.000001+00:00",
        "2030-01-10T10:29:59+00:00",
        "2030-01-10T10:00:00+05:45",  # 04:15 UTC
        "2030-01-10T10:00:00+00:01",  # 09:59 UTC
    ],
)
def test_off_the_grid(start: str) -> None:
    """covers: TCH-1"""
    with pytest.raises(OffGrid) as refused:
        check_on_grid(datetime.fromisoformat(start))
    assert refused.value.details["grid_minutes"] == 30


# --- teachers open up to 8 weeks ahead ----------------------------------------------------------


def test_teacher_opens_up_to_exactly_eight_weeks_ahead() -> None:
    """covers: TCH-1, FM-6"""
    limit = NOW + RULES.teacher_open_ahead
    assert RULES.teacher_open_ahead == timedelta(weeks=8)
    check_teacher_can_open(limit, NOW, RULES)
    check_teacher_can_open(NOW + timedelta(minutes=30), NOW, RULES)  # no minimum lead
    with pytest.raises(OutsideWindow) as refused:
        check_teacher_can_open(limit + timedelta(minutes=30), NOW, RULES)
    assert refused.value.details["latest"] == limit.isoformat()


def test_teacher_cannot_open_now_or_in_the_past() -> None:
    """covers: TCH-1, FM-6"""
    for start in (NOW, NOW - timedelta(minutes=30)):
        with pytest.raises(InPast):
            check_teacher_can_open(start, NOW, RULES)


def test_teacher_grid_is_checked_before_the_window() -> None:
    """An off-grid time far in the past is refused as off the grid: the first rule it breaks."""
    with pytest.raises(OffGrid):
        check_teacher_can_open(NOW - timedelta(days=1, minutes=15), NOW, RULES)


def test_the_limit_ahead_is_a_setting() -> None:
    """covers: TCH-1. A shorter horizon refuses what the default allows."""
    short = BookingRules(teacher_open_ahead=timedelta(weeks=2))
    check_teacher_can_open(NOW + timedelta(weeks=2), NOW, short)
    with pytest.raises(OutsideWindow):
        check_teacher_can_open(NOW + timedelta(weeks=2, minutes=30), NOW, short)


# --- students book from 1 h to 4 weeks ahead ----------------------------------------------------


def test_student_books_from_one_hour_to_four_weeks_ahead() -> None:
    """covers: PAR-1, H5-1, LP-2"""
    assert RULES.student_book_min_lead == timedelta(hours=1)
    assert RULES.student_book_ahead == timedelta(weeks=4)
    check_student_can_book(NOW + RULES.student_book_min_lead, NOW, RULES)
    check_student_can_book(NOW + RULES.student_book_ahead, NOW, RULES)
    for start in (
        NOW + RULES.student_book_min_lead - SECOND,  # 59:59 before the start
        NOW + RULES.student_book_ahead + timedelta(minutes=30),
    ):
        with pytest.raises(OutsideWindow):
            check_student_can_book(start, NOW, RULES)


def test_student_window_is_narrower_than_the_teachers() -> None:
    """covers: TCH-1, PAR-1. A slot opened 8 weeks ahead is bookable only 4 weeks before it."""
    start = NOW + RULES.teacher_open_ahead
    check_teacher_can_open(start, NOW, RULES)
    with pytest.raises(OutsideWindow):
        check_student_can_book(start, NOW, RULES)
    check_student_can_book(start, start - RULES.student_book_ahead, RULES)


# --- class requests: on the grid, 3 h to 4 weeks ahead ------------------------------------------


def test_request_needs_three_hours_lead() -> None:
    """covers: LP-6, TCH-3"""
    assert RULES.request_min_lead == timedelta(hours=3)
    check_can_request(NOW + RULES.request_min_lead, NOW, RULES)
    with pytest.raises(OutsideWindow):
        check_can_request(NOW + RULES.request_min_lead - timedelta(minutes=30), NOW, RULES)
    check_can_request(NOW + RULES.student_book_ahead, NOW, RULES)
    with pytest.raises(OutsideWindow):
        check_can_request(NOW + RULES.student_book_ahead + timedelta(minutes=30), NOW, RULES)


def test_request_is_on_the_grid() -> None:
    """covers: LP-6"""
    with pytest.raises(OffGrid):
        check_can_request(NOW + timedelta(hours=5, minutes=10), NOW, RULES)


def test_request_lead_counts_from_now_not_from_the_grid() -> None:
    """covers: LP-6. At 10:01 a 13:00 start is 2 h 59 min away: too soon."""
    now = NOW + timedelta(minutes=1)
    with pytest.raises(OutsideWindow):
        check_can_request(NOW + RULES.request_min_lead, now, RULES)
    check_can_request(NOW + RULES.request_min_lead + timedelta(minutes=30), now, RULES)


# --- over-booked classes: 10 min to 14 days ahead -----------------------------------------------


def test_overbooked_class_window() -> None:
    """covers: TMK-1, CC-1, SD-5a"""
    rules = OverbookingRules()
    check_can_overbook(NOW + rules.book_min_lead, NOW, rules)
    check_can_overbook(NOW + rules.book_ahead, NOW, rules)
    for start in (NOW + rules.book_min_lead - SECOND, NOW + rules.book_ahead + SECOND):
        with pytest.raises(OutsideWindow):
            check_can_overbook(start, NOW, rules)
    with pytest.raises(InPast):
        check_can_overbook(NOW, NOW, rules)
