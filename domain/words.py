"""The domain's words (docs/operations.md), one enum each, used everywhere under the same name."""

from enum import StrEnum


class TeacherKind(StrEnum):
    foreign = "foreign"
    chinese = "chinese"


class CourseType(StrEnum):
    major = "major"
    special = "special"
    l7_major = "l7_major"
    trial = "trial"
    advanced = "advanced"
    open = "open"


class TimeslotState(StrEnum):
    open = "open"
    booked = "booked"
    removed = "removed"


class Direction(StrEnum):
    """Who may book an open timeslot (定向)."""

    general = "general"
    student = "student"
    request = "request"
    contract = "contract"
    product = "product"
    overbook_pool = "overbook_pool"
    # Held for a channel (direction_target: tmk, cc) after its fake cancel (TMK-4, CC-4).
    channel = "channel"


class Product(StrEnum):
    """A product line whose bookings may take the slots directed at it (产品定向, INT-1)."""

    dual_teacher = "dual_teacher"
    international = "international"


class ClassState(StrEnum):
    booked = "booked"
    cancelled = "cancelled"
    finished = "finished"


class ClassLabel(StrEnum):
    as_scheduled = "as_scheduled"
    student_no_show = "student_no_show"
    teacher_no_show = "teacher_no_show"
    student_it_issue = "student_it_issue"
    teacher_it_issue = "teacher_it_issue"
    system_issue = "system_issue"


class Asset(StrEnum):
    """What a student pays with: credits per course type, single-use coupons, energy stones."""

    credit = "credit"
    coupon = "coupon"
    stones = "stones"


class RequestState(StrEnum):
    """A class request (求课): pending until the teacher answers, it expires, or it is withdrawn."""

    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    expired = "expired"
    withdrawn = "withdrawn"
    failed = "failed"


class PenaltyKind(StrEnum):
    """Why a teacher was penalised (TCH-5, and the penalising labels)."""

    teacher_cancel = "teacher_cancel"
    teacher_no_show = "teacher_no_show"
    teacher_it_issue = "teacher_it_issue"


class HoldState(StrEnum):
    """A teacher-cancel hold: the offered slots wait for the student until they expire."""

    holding = "holding"
    booked = "booked"
    expired = "expired"
    ended = "ended"
