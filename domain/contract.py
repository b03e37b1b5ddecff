"""What the dual-excellence contract flow (双优合约, TCH-6, SD-7, SD-4) carries between the
API, its workflow and its activities."""

from datetime import date, datetime, time
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from domain.channels import Actor
from domain.errors import DomainError, Invalid
from domain.values import Id, LocalTime
from domain.weekly import Weekday
from domain.words import CourseType


class ContractState(StrEnum):
    proposed = "proposed"  # waiting for both teachers
    active = "active"  # both agreed: weeks are booked two ahead
    declined = "declined"  # a teacher said no
    expired = "expired"  # the first week began before both agreed
    terminated = "terminated"  # the LP ended it; future classes cancelled and refunded
    finished = "finished"  # the last week is over


class Role(StrEnum):
    """Which of the contract's two teachers."""

    chinese = "chinese"
    foreign = "foreign"


class ContractClosed(DomainError):
    code = "contract_closed"


class NotContractTeacher(DomainError):
    status = 403
    code = "not_contract_teacher"


class BadContract(Invalid):
    code = "bad_contract"


class WeeklyTime(BaseModel, frozen=True):
    teacher_id: Id
    weekday: Weekday
    start: LocalTime  # on :00 or :30


class ContractInput(BaseModel):
    contract_id: int
    student_id: int
    chinese: WeeklyTime
    foreign: WeeklyTime
    first_week: date  # a Monday
    weeks: int | None  # None: open-ended, until the LP terminates
    course_type: CourseType
    actor: Actor
    # Weeks booked per workflow run before it continues as new (history stays bounded).
    weeks_per_run: int = 26
    # Set only when the flow continues as new: where the previous run left off.
    progress: "Progress | None" = None


class ContractView(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    student_id: int
    chinese_teacher_id: int
    chinese_weekday: Weekday
    chinese_start: time
    foreign_teacher_id: int
    foreign_weekday: Weekday
    foreign_start: time
    first_week: date
    weeks: int | None
    course_type: CourseType
    state: ContractState
    chinese_agreed: bool | None
    foreign_agreed: bool | None
    reason: str | None
    channel: str
    actor_id: str
    created_at: datetime
    updated_at: datetime
    # The teachers answer before the first week begins (its Monday, 00:00 local).
    answer_by: datetime | None = None


class WeekBooking(BaseModel):
    """One teacher's class of one contract week: booked (class_id), or why not (reason)."""

    model_config = ConfigDict(from_attributes=True)
    week: date
    role: Role
    start_at: datetime
    class_id: int | None
    reason: str | None


class WeekOutcome(BaseModel):
    week: date
    bookings: list[WeekBooking]
    # When the flow books the week after (that week's Monday minus two weeks, 00:00 local).
    next_booking_at: datetime
    # When this week is over (the next Monday, 00:00 local).
    ends_at: datetime


class Started(BaseModel):
    """W1 and W2, booked when both teachers agreed."""

    weeks: list[WeekOutcome]


class Answer(BaseModel):
    """A teacher's agreement or refusal (teacher portal)."""

    actor: Actor
    teacher_id: Id
    reason: str | None = None


class Termination(BaseModel):
    actor: Actor
    reason: str | None = None


class Progress(BaseModel):
    """What a contract flow carries over continue-as-new."""

    view: ContractView
    next_week: date
    weeks_booked: int
    history: list[WeekBooking]
    next_booking_at: datetime
    last_week_ends_at: datetime | None


class ContractFlowState(BaseModel):
    """The flow's `state` query: the contract and its recent weeks."""

    contract: ContractView | None
    weeks_booked: int
    next_week: date | None
    recent_weeks: list[WeekBooking]


# Activity inputs: each names the moment it acts at (workflow.now()).


class ProposeContract(BaseModel):
    contract: ContractInput
    now: datetime


class AnswerContract(BaseModel):
    contract_id: int
    answer: Answer
    agree: bool
    now: datetime


class CloseContract(BaseModel):
    contract_id: int
    state: ContractState
    reason: str | None
    actor: Actor
    now: datetime


class BookContractWeek(BaseModel):
    contract_id: int
    week: date
    actor: Actor
    now: datetime


ContractInput.model_rebuild()
