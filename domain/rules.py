"""Time and price rules (docs/rules.md "Time rules"): every default is a setting. And who
teaches and takes what: teachers' certifications, Chinese teachers, L7 classes."""

from collections.abc import Collection, Iterable
from datetime import UTC, datetime, time, timedelta

from pydantic import BaseModel, PositiveInt, field_validator

from domain.errors import (
    CourseTypeNotForChineseTeacher,
    CourseTypeNotTaught,
    InPast,
    L7StudentsOnly,
    OffGrid,
    OpenClassBySeat,
    OutsideWindow,
)
from domain.overbooking import OverbookingRules
from domain.values import LocalTime, TimeZone
from domain.window import check_window
from domain.words import Asset, CourseType, TeacherKind

SLOT = timedelta(minutes=30)
# What a Chinese teacher may be certified for: the Chinese half of all-round advanced. (The
# Chinese half of a dual-excellence contract needs no certification beyond the kind.)
CHINESE_TEACHER_COURSE_TYPES = frozenset({CourseType.advanced})
# The level of the students who take L7 advanced major classes.
L7 = 7


STONE_PRICES: dict[CourseType, PositiveInt] = {
    CourseType.major: 100,
    CourseType.special: 120,
    CourseType.l7_major: 150,
    CourseType.trial: 50,
    CourseType.advanced: 150,
    CourseType.open: 30,
}


class BookingRules(BaseModel):
    teacher_open_ahead: timedelta = timedelta(weeks=8)
    student_book_ahead: timedelta = timedelta(weeks=4)
    student_book_min_lead: timedelta = timedelta(hours=1)
    refund_cutoff: timedelta = timedelta(hours=24)
    request_min_lead: timedelta = timedelta(hours=3)
    request_answer_within: timedelta = timedelta(hours=24)
    request_answer_before_start: timedelta = timedelta(hours=2)
    teacher_cancel_hold: timedelta = timedelta(hours=24)
    # TCH-5: fireman extends a hold to at most this long after the teacher's cancel (and never
    # past the start of its last offered slot).
    teacher_cancel_hold_max: timedelta = timedelta(days=7)
    # Set in part (YUEKE_RULES__STONE_PRICES='{"major": 120}'): the others keep their default.
    stone_prices: dict[CourseType, PositiveInt] = STONE_PRICES
    business_time_zone: TimeZone = "Asia/Shanghai"
    # SD-2: until this local time on Monday, an exclusive teacher's general slots of the
    # following week are bookable only by their own exclusive students.
    exclusive_priority_until: LocalTime = time(8, 30)
    # SD-3, LP-7: from `from` until `until` local time on Monday, the following week's general
    # slots are bookable only by dino-home students (a finished class in the current or the
    # previous business week) and, for an exclusive teacher's slots, that teacher's own
    # exclusive students. `until` is the auto-booking run's time (12:03) by default.
    dino_home_priority_from: LocalTime = time(0, 0)
    dino_home_priority_until: LocalTime = time(12, 3)
    # Over-booking (SD-5, CLS-2, H5-9): see domain.overbooking.
    overbooking: OverbookingRules = OverbookingRules()

    @field_validator("stone_prices", mode="after")
    @classmethod
    def _every_course_type_priced(
        cls, prices: dict[CourseType, PositiveInt]
    ) -> dict[CourseType, PositiveInt]:
        return {**STONE_PRICES, **prices}


def check_on_grid(start_at: datetime) -> None:
    """Classes start at :00 or :30 UTC, to the second."""
    utc = start_at.astimezone(UTC)
    if utc.minute % 30 or utc.second or utc.microsecond:
        raise OffGrid(
            "a timeslot starts at :00 or :30", start_at=start_at.isoformat(), grid_minutes=30
        )


def check_teacher_can_open(start_at: datetime, now: datetime, rules: BookingRules) -> None:
    check_on_grid(start_at)
    if start_at <= now:
        raise InPast("the timeslot starts in the past", start_at=start_at.isoformat())
    if start_at > now + rules.teacher_open_ahead:
        raise OutsideWindow(
            "teachers open timeslots up to the limit ahead",
            start_at=start_at.isoformat(),
            latest=(now + rules.teacher_open_ahead).isoformat(),
        )


def check_certification(kind: TeacherKind, course_types: Iterable[CourseType]) -> None:
    """A teacher registered as Chinese is certified only for all-round advanced."""
    if kind is TeacherKind.chinese:
        others = sorted({c.value for c in course_types} - CHINESE_TEACHER_COURSE_TYPES)
        if others:
            raise CourseTypeNotForChineseTeacher(
                "a Chinese teacher teaches only the Chinese half of all-round advanced and of "
                "dual-excellence contracts",
                course_types=others,
                allowed=sorted(CHINESE_TEACHER_COURSE_TYPES),
            )


def check_teaches(
    teacher_id: int,
    kind: TeacherKind,
    certified: Collection[str],
    course_type: CourseType,
    *,
    contract: bool = False,
) -> None:
    """The teacher may teach a class of this course type: one they are certified for, and for a
    Chinese teacher only the Chinese half of all-round advanced, or of a dual-excellence
    contract (`contract`), whatever the contract's course type."""
    if kind is TeacherKind.chinese:
        if contract:
            return
        if course_type not in CHINESE_TEACHER_COURSE_TYPES:
            raise CourseTypeNotForChineseTeacher(
                "a Chinese teacher teaches only the Chinese half of all-round advanced and of "
                "dual-excellence contracts",
                teacher_id=teacher_id,
                course_type=course_type.value,
            )
    if course_type.value not in certified:
        raise CourseTypeNotTaught(
            "the teacher does not teach this course type",
            teacher_id=teacher_id,
            course_type=course_type.value,
            teaches=sorted(certified),
        )


def check_student_takes(student_id: int, level: int, course_type: CourseType) -> None:
    """What every 1-on-1 path (booking, force-book, class request, over-booking, contract,
    auto-booking rule, change of student) lets the student take: not an open class, and L7
    advanced major classes at Level 7 only."""
    check_one_on_one(course_type)
    if course_type is CourseType.l7_major and level != L7:
        raise L7StudentsOnly(
            "L7 major classes are for Level 7 students",
            student_id=student_id,
            level=level,
            course_type=course_type.value,
            required_level=L7,
        )


def is_one_on_one(course_type: CourseType) -> bool:
    """A 1-on-1 class is of any course type but open: an open class is booked by seat."""
    return course_type is not CourseType.open


def check_one_on_one(course_type: CourseType) -> None:
    if not is_one_on_one(course_type):
        raise OpenClassBySeat(
            "an open class is booked by seat, not as a 1-on-1 class",
            course_type=course_type.value,
            seats="POST /v1/open-classes/{open_class_id}/seats",
        )


def check_student_can_book(start_at: datetime, now: datetime, rules: BookingRules) -> None:
    check_window(
        start_at,
        now,
        lead=rules.student_book_min_lead,
        ahead=rules.student_book_ahead,
        what="a booked class",
    )


def check_can_request(start_at: datetime, now: datetime, rules: BookingRules) -> None:
    """A class request is made on the grid, at least 3 h ahead, within the booking horizon."""
    check_on_grid(start_at)
    check_window(
        start_at,
        now,
        lead=rules.request_min_lead,
        ahead=rules.student_book_ahead,
        what="a requested class",
    )


def request_deadline(created_at: datetime, start_at: datetime, rules: BookingRules) -> datetime:
    """The teacher answers before min(created + 24 h, start - 2 h), else the request expires."""
    return min(
        created_at + rules.request_answer_within, start_at - rules.request_answer_before_start
    )


def refund_due(start_at: datetime, now: datetime, rules: BookingRules) -> bool:
    """A student cancelling at least the cutoff (24 h) before the start gets the payment back."""
    return start_at - now >= rules.refund_cutoff


def price(asset: Asset, course_type: CourseType, rules: BookingRules) -> int:
    """What one class costs: one credit of its course type, one coupon, or its stone price."""
    return rules.stone_prices[course_type] if asset is Asset.stones else 1
