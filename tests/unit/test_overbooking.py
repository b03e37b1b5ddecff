"""Over-booking settings and what the class's flow reads from a view: when it is closed."""

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from domain.overbooking import (
    SLOT,
    TEACHER_LABELS,
    MatchSource,
    OverbookingRules,
    OverbookKind,
    OverbookState,
    OverbookView,
)
from domain.words import ClassLabel, ClassState, CourseType, Direction

START = datetime(2030, 1, 8, 10, 0, tzinfo=UTC)


def view(state: OverbookState, class_state: ClassState) -> OverbookView:
    return OverbookView(
        class_id=1,
        student_id=2,
        kind=OverbookKind.overbook,
        course_type=CourseType.major,
        start_at=START,
        state=state,
        class_state=class_state,
        label=None,
        teacher_id=None,
        timeslot_id=None,
        matched_from=None,
        entered_at=None,
        matched_at=None,
        wait_until=START + OverbookingRules().wait_for_teacher,
        refunded=False,
    )


@pytest.mark.parametrize("state", [OverbookState.booked, OverbookState.waiting])
def test_a_booked_class_still_waiting_for_a_teacher_is_open(state: OverbookState) -> None:
    """covers: SD-5c, CLS-2. The flow keeps retrying only for an open class."""
    assert not view(state, ClassState.booked).closed


@pytest.mark.parametrize("state", [OverbookState.failed, OverbookState.finished])
def test_failed_or_finished_is_closed(state: OverbookState) -> None:
    """covers: SD-5c"""
    assert view(state, ClassState.booked).closed


@pytest.mark.parametrize("class_state", [ClassState.cancelled, ClassState.finished])
def test_a_class_no_longer_booked_is_closed_whatever_the_overbooking_state(
    class_state: ClassState,
) -> None:
    """covers: SD-5c, FM-3. A class cancelled or finished by other means stops the flow."""
    assert view(OverbookState.waiting, class_state).closed


def test_match_sources_are_directions() -> None:
    """covers: SD-5b, SD-5c. A match takes a pool slot or an open general slot."""
    assert {source.value for source in MatchSource} == {
        Direction.overbook_pool.value,
        Direction.general.value,
    }


def test_only_teacher_labels_are_given_to_a_swapped_teacher() -> None:
    """covers: SD-5d, FM-7"""
    assert TEACHER_LABELS == {label for label in ClassLabel if label.value.startswith("teacher_")}


def test_defaults_wait_ten_minutes_and_retry_every_thirty_seconds() -> None:
    """covers: SD-5c. The wait ends before the class's half hour does."""
    rules = OverbookingRules()
    assert rules.wait_for_teacher == timedelta(minutes=10) < SLOT
    assert rules.retry_every == timedelta(seconds=30) < rules.wait_for_teacher


@pytest.mark.parametrize("factor", [0.99, 5.01, 0])
def test_pool_factor_outside_one_to_five_is_refused(factor: float) -> None:
    """covers: SD-5b. Below 1 the pool could not cover the unmatched classes."""
    with pytest.raises(ValidationError):
        OverbookingRules(pool_factor=factor)


@pytest.mark.parametrize("factor", [1.0, 1.5, 5.0])
def test_pool_factor_within_bounds(factor: float) -> None:
    """covers: SD-5b"""
    assert OverbookingRules(pool_factor=factor).pool_factor == factor


def test_reservation_runs_before_each_half_hour() -> None:
    """covers: SD-5b. The Schedule's minutes fall just before :00 and :30, within the
    over-booked classes' booking lead, so that demand booked up to 10 min ahead is seen."""
    rules = OverbookingRules()
    for minute in rules.reservation_minutes:
        to_next_half_hour = timedelta(minutes=30 - minute % 30)
        assert timedelta(0) < to_next_half_hour <= rules.book_min_lead
