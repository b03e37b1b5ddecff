"""What the dual-excellence contract flow (双优合约, TCH-6, SD-7, SD-4) carries between the
API, its workflow and its activities."""

from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from domain.channels import Actor
from domain.errors import DomainError, Invalid
from domain.values import Id, LocalTime
from domain.weekly import Weekday
from domain.words import CourseType

# A week's contract-directed slots are offered to its teachers this long before the week
# begins (W3 when W1 begins), and each teacher answers before the week before it begins.
OFFER_AHEAD = timedelta(weeks=2)
ANSWER_AHEAD = timedelta(weeks=1)


class ContractState(StrEnum):
    proposed = "proposed"  # waiting for both teachers (contracts proposed before weekly answers)
    active = "active"  # W1 and W2 booked; each later week offered to its teachers
    declined = "declined"  # a teacher said no
    expired = "expired"  # the first week began before both agreed
    terminated = "terminated"  # the LP ended it; future classes cancelled and refunded
    finished = "finished"  # the last week is over


class Role(StrEnum):
    """Which of the contract's two teachers."""

    chinese = "chinese"
    foreign = "foreign"


class ContractWeekState(StrEnum):
    """One teacher's class of one contract week."""

    awaiting = "awaiting"  # its contract-directed slot is offered; the teacher has not answered
    booked = "booked"  # the class is booked (W1, W2 at creation; later weeks once agreed)
    unbooked = "unbooked"  # could not be booked: `reason` says why (teacher_busy, …)
    declined = "declined"  # the teacher said no; the slot went to general inventory
    expired = "expired"  # no answer by `answer_by`; the slot went to general inventory
    withdrawn = "withdrawn"  # the contract was terminated while the week awaited its answer


class ContractClosed(DomainError):
    code = "contract_closed"


class ContractWeekNotTheirs(DomainError):
    """A teacher answers only their own role's week of a contract they teach."""

    code = "contract_week_not_theirs"


class ContractWeekAnswered(DomainError):
    """The week is no longer awaiting this teacher's answer."""

    code = "contract_week_answered"


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
    """One teacher's class of one contract week: its state, the class once booked, why not."""

    model_config = ConfigDict(from_attributes=True)
    week: date
    role: Role
    start_at: datetime
    class_id: int | None
    reason: str | None
    state: ContractWeekState
    timeslot_id: int | None = None
    answer_by: datetime | None = None
    answered_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _state_of_early_weeks(cls, data: Any) -> Any:
        """Flows that booked every week at once carried no state: booked, or unbooked."""
        if isinstance(data, dict) and "state" not in data:
            booked = data.get("class_id") is not None
            state = ContractWeekState.booked if booked else ContractWeekState.unbooked
            return {**data, "state": state}
        return data


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


class Created(BaseModel):
    """A contract as created: active, with W1 and W2 booked (those that could be)."""

    view: ContractView
    weeks: list[WeekOutcome]


class WeekOffer(BaseModel):
    """A week's slots offered to its teachers: what each role awaits (or why not), and when
    the flow offers the week after."""

    week: date
    bookings: list[WeekBooking]
    next_offer_at: datetime
    ends_at: datetime


class Expired(BaseModel):
    """The weeks whose answer deadline passed without an answer."""

    weeks: list[WeekBooking]


class WeekAnswer(BaseModel):
    """A teacher's answer for their class of one contract week (teacher portal)."""

    actor: Actor
    teacher_id: Id
    week: date
    agree: bool
    reason: str | None = None


class TeacherWeek(BaseModel):
    """A contract week awaiting a teacher's answer, as the teacher portal lists it: times in
    UTC and in the teacher's own zone, and whether that local time moved since the week
    before (a change of summer time in the teacher's zone; the student's time stays put)."""

    contract_id: int
    student_id: int
    week: date
    role: Role
    start_at: datetime
    answer_by: datetime
    time_zone: str
    local_start: datetime
    previous_local_start: datetime
    local_time_moved: bool


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
    # Weeks offered to their teachers (contracts created since weekly answers), and those
    # still awaiting an answer.
    weekly_answers: bool = False
    awaiting: list[WeekBooking] = []


class ContractFlowState(BaseModel):
    """The flow's `state` query: the contract, its recent weeks, those awaiting an answer."""

    contract: ContractView | None
    weeks_booked: int
    next_week: date | None
    recent_weeks: list[WeekBooking]
    awaiting_weeks: list[WeekBooking] = []


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


class AnswerContractWeek(BaseModel):
    contract_id: int
    answer: WeekAnswer
    now: datetime


class ExpireContractWeeks(BaseModel):
    contract_id: int
    actor: Actor
    now: datetime


ContractInput.model_rebuild()
