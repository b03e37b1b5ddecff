"""Weekly booking runs, contracts and learning progress: the names and limits that their flows
and the API rely on."""

from datetime import date, time

import pytest
from pydantic import ValidationError

from domain.auto_booking import RunKind, RunRequest, Wish
from domain.channels import Actor, Channel
from domain.contract import ContractInput, WeeklyTime
from domain.learning_progress import ADVANCED_BOOTCAMP, lesson_name
from domain.weekly import Weekday
from domain.words import CourseType
from yueke.settings import Settings

LP = Actor(channel=Channel.lp, id="lp-1")


@pytest.mark.parametrize(
    ("kind", "rule_kind", "prefix"),
    [
        (RunKind.auto, "auto", "auto-booking"),
        (RunKind.exclusive, "exclusive", "exclusive-booking"),
        (RunKind.exclusive_l7, "exclusive", "exclusive-booking"),
    ],
)
def test_run_kinds_share_rules_and_flow_names(kind: RunKind, rule_kind: str, prefix: str) -> None:
    """covers: SD-6, SD-1. Level 7 exclusive students book from the same exclusive rules."""
    assert (kind.rule_kind, kind.flow_prefix) == (rule_kind, prefix)


@pytest.mark.parametrize("chunk", [0, 10_001])
def test_a_run_chunk_is_between_one_and_ten_thousand_students(chunk: int) -> None:
    """covers: SD-6. Each chunk is one transaction: neither empty nor unbounded."""
    with pytest.raises(ValidationError):
        RunRequest(kind=RunKind.auto, actor=LP, chunk=chunk)


def test_a_run_by_the_schedule_books_next_week_in_chunks_of_four_thousand() -> None:
    """covers: SD-6. The Schedule's chunk (a setting) and a staff run's default are the same."""
    request = RunRequest(kind=RunKind.auto, actor=LP)
    assert (request.week, request.run_id, request.student_id, request.chunk) == (
        None,
        None,
        None,
        4000,
    )
    assert Settings().weekly.auto_booking_chunk == 4000


def test_wishes_are_values() -> None:
    """covers: LP-1. The same wish twice is one wish."""
    wish = Wish(weekday=Weekday.tuesday, start=time(19, 0))
    assert len({wish, Wish(weekday="tuesday", start=time(19, 0))}) == 1


def contract(**changes: object) -> ContractInput:
    return ContractInput.model_validate(
        {
            "contract_id": 1,
            "student_id": 2,
            "chinese": WeeklyTime(teacher_id=3, weekday=Weekday.monday, start=time(19)),
            "foreign": WeeklyTime(teacher_id=4, weekday=Weekday.thursday, start=time(19)),
            "first_week": date(2030, 1, 14),
            "weeks": 12,
            "course_type": CourseType.major,
            "actor": LP,
            **changes,
        }
    )


def test_a_new_contract_starts_from_the_beginning() -> None:
    """covers: TCH-6, SD-7. Progress is set only when a long flow continues as new."""
    started = contract()
    assert started.progress is None
    assert started.weeks_per_run > 0


def test_an_open_ended_contract_has_no_week_count() -> None:
    """covers: TCH-6. weeks None: booked on until the LP terminates."""
    assert contract(weeks=None).weeks is None


@pytest.mark.parametrize("lesson", [1, 3, 40])
def test_lesson_names_carry_course_and_number(lesson: int) -> None:
    """covers: CUR-1. Each class of the bootcamp stores which lesson it teaches."""
    name = lesson_name(ADVANCED_BOOTCAMP, lesson)
    course, _, number = name.rpartition("#")
    assert (course, int(number)) == (ADVANCED_BOOTCAMP, lesson)
    assert lesson_name(ADVANCED_BOOTCAMP, lesson + 1) != name


def test_auto_booking_cannot_be_scheduled_inside_the_dino_home_window() -> None:
    """covers: SD-3, SD-6. A Schedule that fires before the window closes would only ever see
    its runs refused: the settings are refused at start instead."""
    with pytest.raises(ValidationError, match="dino-home window"):
        Settings(weekly={"auto_booking_at": time(11, 0)})
    with pytest.raises(ValidationError, match="dino-home window"):
        Settings(rules={"dino_home_priority_until": time(13, 0)})
    settings = Settings(weekly={"auto_booking_at": time(13, 0)})
    assert settings.weekly.auto_booking_at == time(13, 0)
