"""Deadlines a user relies on: when a class request expires, until when a cancellation is
refunded, when an instant class starts, when the classroom lets a student in."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.errors import OutsideWindow
from domain.overbooking import (
    SLOT,
    ClassNotInProgress,
    ClassroomClosed,
    OverbookingRules,
    check_classroom_open,
    check_in_progress,
    instant_start,
    next_half_hour,
)
from domain.rules import BookingRules, refund_due, request_deadline

RULES = BookingRules()
OB = OverbookingRules()
SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)
NOW = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")


# --- class request deadline: min(created + 24 h, start - 2 h) -----------------------------------


def test_request_far_ahead_expires_a_day_after_it_was_made() -> None:
    """covers: TCH-3, TCH-4, LP-6"""
    start = NOW + timedelta(days=3)
    assert request_deadline(NOW, start, RULES) == NOW + RULES.request_answer_within
    assert RULES.request_answer_within == timedelta(hours=24)


def test_request_close_to_its_start_expires_two_hours_before_it() -> None:
    """covers: TCH-3, TCH-4, LP-6"""
    start = NOW + 10 * HOUR
    assert request_deadline(NOW, start, RULES) == start - RULES.request_answer_before_start
    assert RULES.request_answer_before_start == timedelta(hours=2)


@pytest.mark.parametrize("offset", [-SECOND, timedelta(0), SECOND])
def test_request_deadline_picks_the_earlier_bound_around_the_crossover(offset: timedelta) -> None:
    """covers: LP-6. The two bounds meet when the start is 26 h away."""
    start = NOW + RULES.request_answer_within + RULES.request_answer_before_start + offset
    by_answer_time = NOW + RULES.request_answer_within
    by_start = start - RULES.request_answer_before_start
    deadline = request_deadline(NOW, start, RULES)
    assert deadline == min(by_answer_time, by_start)
    assert deadline == (by_start if offset < timedelta(0) else by_answer_time)


def test_request_at_the_minimum_lead_leaves_the_teacher_one_hour() -> None:
    """covers: TCH-3. Requested exactly 3 h ahead, answerable for 1 h, still before the start."""
    start = NOW + RULES.request_min_lead
    deadline = request_deadline(NOW, start, RULES)
    assert deadline - NOW == RULES.request_min_lead - RULES.request_answer_before_start
    assert NOW < deadline < start


def test_request_deadline_follows_the_settings() -> None:
    rules = BookingRules(
        request_answer_within=timedelta(hours=6), request_answer_before_start=timedelta(hours=1)
    )
    assert request_deadline(NOW, NOW + timedelta(days=2), rules) == NOW + timedelta(hours=6)
    assert request_deadline(NOW, NOW + 4 * HOUR, rules) == NOW + 3 * HOUR


# --- refunds: at least 24 h before the start ----------------------------------------------------


def test_cancelling_exactly_24_hours_before_the_start_is_refunded() -> None:
    """covers: PAR-3, H5-5, LP-3"""
    start = NOW + timedelta(days=2)
    assert refund_due(start, start - RULES.refund_cutoff, RULES)
    assert RULES.refund_cutoff == timedelta(hours=24)


def test_cancelling_23_59_59_before_the_start_is_not_refunded() -> None:
    """covers: PAR-3, H5-5, LP-3"""
    start = NOW + timedelta(days=2)
    assert not refund_due(start, start - RULES.refund_cutoff + SECOND, RULES)
    assert not refund_due(start, start - timedelta(microseconds=1), RULES)


def test_earlier_cancellations_are_refunded() -> None:
    """covers: PAR-3"""
    start = NOW + timedelta(days=20)
    assert refund_due(start, NOW, RULES)


def test_refund_cutoff_is_a_setting() -> None:
    """covers: PAR-3"""
    start = NOW + timedelta(days=2)
    rules = BookingRules(refund_cutoff=timedelta(hours=48))
    assert refund_due(start, NOW, rules)
    assert not refund_due(start, NOW + SECOND, rules)


def test_teacher_cancel_hold_lasts_a_day_by_default() -> None:
    """covers: TCH-5. The held slots wait for the student this long (a setting)."""
    assert RULES.teacher_cancel_hold == timedelta(hours=24)
    assert BookingRules(teacher_cancel_hold=timedelta(hours=6)).teacher_cancel_hold == 6 * HOUR


# --- instant classes: the next :00/:30, if at most 20 min away ----------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (NOW, NOW + SLOT),  # strictly after: a class starting now is not "next"
        (NOW + timedelta(microseconds=1), NOW + SLOT),
        (NOW + SLOT - timedelta(microseconds=1), NOW + SLOT),
        (NOW + timedelta(minutes=45), NOW + 2 * SLOT),
        (datetime(2030, 1, 7, 18, 10, tzinfo=SHANGHAI), NOW + SLOT),  # 10:10 UTC
    ],
)
def test_next_half_hour(now: datetime, expected: datetime) -> None:
    """covers: H5-9"""
    assert next_half_hour(now) == expected


def test_instant_class_starts_at_the_next_half_hour_up_to_20_minutes_away() -> None:
    """covers: H5-9. At :10 the :30 class is exactly 20 min away: allowed."""
    now = NOW + SLOT - OB.instant_within
    assert instant_start(now, OB) == NOW + SLOT
    assert instant_start(NOW + timedelta(minutes=29), OB) == NOW + SLOT


def test_instant_class_refused_when_the_next_half_hour_is_too_far() -> None:
    """covers: H5-9. At :09:59 the :30 class is 20 min 1 s away."""
    now = NOW + SLOT - OB.instant_within - SECOND
    with pytest.raises(OutsideWindow) as refused:
        instant_start(now, OB)
    assert refused.value.details["start_at"] == (NOW + SLOT).isoformat()
    assert refused.value.details["within_minutes"] == OB.instant_within.total_seconds() / 60


# --- the classroom: open from start - 15 min to the end of the half hour ------------------------


def test_classroom_opens_15_minutes_before_and_closes_at_the_end() -> None:
    """covers: CLS-2, SD-5c"""
    start = NOW + timedelta(days=1)
    opens, closes = start - OB.entry_opens_before, start + SLOT
    for now in (opens, start, closes - SECOND):
        check_classroom_open(start, now, OB)
    for now in (opens - SECOND, closes):
        with pytest.raises(ClassroomClosed) as refused:
            check_classroom_open(start, now, OB)
        assert refused.value.details["opens"] == opens.isoformat()
        assert refused.value.details["closes"] == closes.isoformat()


def test_a_teacher_is_swapped_only_while_the_class_is_on() -> None:
    """covers: SD-5d, FM-7"""
    start = NOW + timedelta(days=1)
    check_in_progress(start, start + timedelta(minutes=29), OB)
    for now in (start - OB.entry_opens_before - SECOND, start + SLOT):
        with pytest.raises(ClassNotInProgress):
            check_in_progress(start, now, OB)
