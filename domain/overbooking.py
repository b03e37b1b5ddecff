"""Over-booking (超约, SD-5, TMK-1, CC-1, CLS-2, H5-9, H5-10, FM-7): what its flows carry
between the API, the workflows and the activities, and its rules (all settings).

A class is booked and paid with no teacher. Supply-demand reserves teachers ahead of demand
into the `overbook_pool` direction (SD-5b). When the student enters the online classroom the
match (a pool slot at the start, else any open general slot) is one PostgreSQL transaction in
the request (CLS-2, SD-5c); the class's workflow, `overbook-{class_id}`, owns what waits: it
retries for a student left waiting, fails the class with a full refund at start + 10 min, and
closes the class at the end of its half hour (student_no_show if the student never entered).
"""

import math
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from domain.channels import Actor
from domain.errors import DomainError, Invalid, OutsideWindow
from domain.values import TimeZone
from domain.window import check_window
from domain.words import ClassLabel, ClassState, CourseType, Direction

SLOT = timedelta(minutes=30)


class OverbookingRules(BaseModel):
    """Defaults of the over-booking flows; each one a setting
    (e.g. YUEKE_RULES__OVERBOOKING__POOL_FACTOR=1.5)."""

    # An over-booked class is booked from this long before its start (the last reservation run
    # before the start is 2 minutes ahead of it) up to the reservation horizon.
    book_min_lead: timedelta = timedelta(minutes=10)
    book_ahead: timedelta = timedelta(days=14)
    # The classroom reports entries from this long before the start to the end of the slot.
    entry_opens_before: timedelta = timedelta(minutes=15)
    # A student left without a teacher waits until start + this, then the class fails and the
    # payment is refunded in full.
    wait_for_teacher: timedelta = timedelta(minutes=10)
    # While a student waits, the class's workflow tries the match again this often.
    retry_every: timedelta = timedelta(seconds=30)
    # H5-9: an instant class starts at the next :00/:30, if that is at most this far away.
    instant_within: timedelta = timedelta(minutes=20)
    # SD-5b: reserve ceil(unmatched over-booked classes × factor) pool slots per half hour and
    # course type. Above 1 because a student without a teacher is a failed class and a refund
    # while an idle reserved teacher costs one half hour, because in-class swaps (SD-5d) draw
    # on the same pool, and because the ceiling keeps a spare for small demand. Students who
    # do not show up are not discounted: they are known only after the start.
    pool_factor: float = Field(1.2, ge=1.0, le=5.0)
    reservation_horizon: timedelta = timedelta(days=14)
    # The reservation Schedule (Asia/Shanghai): every hour at these minutes, at this second.
    reservation_minutes: list[int] = [28, 58]
    reservation_second: int = 0
    reservation_time_zone: TimeZone = "Asia/Shanghai"


class OverbookKind(StrEnum):
    overbook = "overbook"  # TMK-1, CC-1, SD-5a: booked by staff with no teacher
    real_booking = "real_booking"  # H5-10: registered and booked a trial in one call
    instant = "instant"  # H5-9: next half hour, matched at booking


class OverbookState(StrEnum):
    booked = "booked"  # no teacher yet, the student has not entered
    waiting = "waiting"  # the student entered, no teacher free yet
    matched = "matched"  # a teacher teaches it
    failed = "failed"  # no teacher before the wait ended: cancelled, refunded in full
    finished = "finished"  # closed at the end of the half hour (see the class's label)


class MatchSource(StrEnum):
    overbook_pool = Direction.overbook_pool.value
    general = Direction.general.value


# --- refusals ---------------------------------------------------------------------------------


class NotOverbooked(DomainError):
    status = 404
    code = "class_not_overbooked"


class NoTeacherFree(DomainError):
    code = "no_teacher_free"


class ClassroomClosed(DomainError):
    """The class is not open for entry: too early, after its half hour, or no longer booked."""

    code = "classroom_closed"


class ClassNotInProgress(DomainError):
    code = "class_not_in_progress"


class NoTeacherToSwap(DomainError):
    code = "class_has_no_teacher"


class NotATeacherLabel(Invalid):
    code = "not_a_teacher_label"


TEACHER_LABELS = frozenset({ClassLabel.teacher_it_issue, ClassLabel.teacher_no_show})


# --- time rules -------------------------------------------------------------------------------


def next_half_hour(now: datetime) -> datetime:
    """The first :00 or :30 strictly after now."""
    step = SLOT.total_seconds()
    return datetime.fromtimestamp((math.floor(now.timestamp() / step) + 1) * step, UTC)


def check_can_overbook(start_at: datetime, now: datetime, rules: OverbookingRules) -> None:
    check_window(
        start_at, now, lead=rules.book_min_lead, ahead=rules.book_ahead, what="an over-booked class"
    )


def instant_start(now: datetime, rules: OverbookingRules) -> datetime:
    """H5-9: the start of an instant class booked now, or a refusal if it is too far away."""
    start_at = next_half_hour(now)
    if start_at - now > rules.instant_within:
        raise OutsideWindow(
            "no instant class now: the next half hour starts too late",
            start_at=start_at.isoformat(),
            within_minutes=rules.instant_within.total_seconds() / 60,
        )
    return start_at


def check_classroom_open(start_at: datetime, now: datetime, rules: OverbookingRules) -> None:
    opens, closes = start_at - rules.entry_opens_before, start_at + SLOT
    if not opens <= now < closes:
        raise ClassroomClosed(
            "the classroom is open from shortly before the start to the end of the half hour",
            start_at=start_at.isoformat(),
            opens=opens.isoformat(),
            closes=closes.isoformat(),
        )


def check_in_progress(start_at: datetime, now: datetime, rules: OverbookingRules) -> None:
    opens, closes = start_at - rules.entry_opens_before, start_at + SLOT
    if not opens <= now < closes:
        raise ClassNotInProgress(
            "a teacher is swapped only while the class is on",
            start_at=start_at.isoformat(),
            opens=opens.isoformat(),
            closes=closes.isoformat(),
        )


# --- what crosses Temporal --------------------------------------------------------------------


class OverbookView(BaseModel):
    """An over-booked class as the classroom, the workflow and ops see it."""

    class_id: int
    student_id: int
    kind: OverbookKind
    course_type: CourseType
    start_at: datetime
    state: OverbookState
    class_state: ClassState
    label: ClassLabel | None
    teacher_id: int | None
    timeslot_id: int | None
    matched_from: MatchSource | None
    entered_at: datetime | None
    matched_at: datetime | None
    wait_until: datetime
    refunded: bool

    @property
    def closed(self) -> bool:
        return self.class_state is not ClassState.booked or self.state in (
            OverbookState.failed,
            OverbookState.finished,
        )


class OverbookedClassInput(BaseModel):
    class_id: int
    student_id: int
    start_at: datetime
    wait_until: datetime
    retry_every: timedelta
    actor: Actor


class ClassStep(BaseModel):
    """One store step of the class's flow at the workflow's now."""

    class_id: int
    actor: Actor
    now: datetime


class StudentEntered(BaseModel):
    """The API tells the flow that a student entered and is waiting (only wakes it early)."""

    class_id: int
    entered_at: datetime


class TeacherChanged(BaseModel):
    """The API tells the flow that the class got a teacher or another one (a match at entry,
    a swap, a change of teacher): the flow reads the class and tags itself with the teacher."""

    class_id: int
    teacher_id: int
    changed_at: datetime


class SwapView(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    class_id: int
    old_teacher_id: int
    old_timeslot_id: int
    new_teacher_id: int
    new_timeslot_id: int
    new_from: MatchSource
    old_teacher_label: ClassLabel
    reason: str | None
    channel: str
    actor_id: str
    occurred_at: datetime


class ReserveTeachers(BaseModel):
    now: datetime


class ReservationOutcome(BaseModel):
    """What one reservation run did (SD-5b)."""

    ran_at: datetime
    half_hours_with_demand: int
    demand: int
    reserved: int
    released: int
    released_past: int
    short: int  # pool slots wanted but no open general slot was free
