"""What weekly booking runs carry: auto-booking (自动约, LP-1, SD-6) and the exclusive-teacher
booking (专属外教, SD-1) share one set-based engine; see store.auto_booking."""

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from domain.channels import Actor
from domain.errors import Invalid
from domain.values import LocalTime
from domain.weekly import CHUNK, Weekday
from domain.words import CourseType


class RunKind(StrEnum):
    auto = "auto"  # SD-6: every active auto-booking rule
    exclusive = "exclusive"  # SD-1: exclusive-teacher students below Level 7
    exclusive_l7 = "exclusive_l7"  # SD-1: Level 7 exclusive-teacher students

    @property
    def rule_kind(self) -> str:
        return "auto" if self is RunKind.auto else "exclusive"

    @property
    def flow_prefix(self) -> str:
        return "auto-booking" if self is RunKind.auto else "exclusive-booking"


class RunState(StrEnum):
    running = "running"
    done = "done"


class BadRule(Invalid):
    code = "bad_rule"


class Wish(BaseModel, frozen=True):
    weekday: Weekday
    start: LocalTime  # on :00 or :30


class RuleView(BaseModel):
    student_id: int
    kind: str
    wishes: list[Wish]
    teacher_ids: list[int]
    any_teacher: bool
    course_type: CourseType
    active: bool
    updated_at: datetime


class RunRequest(BaseModel):
    """A run to start: by the Schedule (run_id None, week None: next week) or by staff."""

    kind: RunKind
    actor: Actor
    run_id: int | None = None
    week: date | None = None
    student_id: int | None = None
    chunk: int = Field(CHUNK, ge=1, le=10000)


class RunView(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: RunKind
    week: date
    student_id: int | None
    state: RunState
    students: int
    rounds: int
    booked: int
    failed: int
    flow_id: str
    channel: str
    actor_id: str
    started_at: datetime
    finished_at: datetime | None


class ResultView(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    student_id: int
    position: int  # the wish's rank, 1 = most wished
    start_at: datetime
    teacher_id: int | None
    class_id: int | None
    reason: str | None


class RunProgress(BaseModel):
    """The flow's `state` query (also its current details in the Web UI)."""

    run: RunView | None
    round: int
    students_done: int
    booked: int
    failed: int


# Activity inputs.


class StartRun(BaseModel):
    request: RunRequest
    flow_id: str
    now: datetime


class BookChunk(BaseModel):
    run_id: int
    round: int  # wish position booked in this pass: every student's 1st wish, then 2nd…
    first: int  # positions [first, first + size) of the run's fair order
    size: int
    actor: Actor
    now: datetime


class ChunkOutcome(BaseModel):
    students: int
    booked: int
    failed: int


class FinishRun(BaseModel):
    run_id: int
    now: datetime
