"""What the teacher-cancel hold flow (TCH-5) carries between the API, its workflow and
activities."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from domain.channels import Actor
from domain.words import HoldState, TimeslotState


class TeacherCancelInput(BaseModel):
    class_id: int
    teacher_id: int
    student_id: int
    offered: list[datetime] = Field(max_length=10)
    reason: str | None
    actor: Actor


class OfferedSlot(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    start_at: datetime
    state: TimeslotState
    expires_at: datetime | None


class HoldView(BaseModel):
    class_id: int
    teacher_id: int
    student_id: int
    state: HoldState
    expires_at: datetime
    reason: str | None
    booked_class_id: int | None
    offered: list[OfferedSlot]


class CancelByTeacher(BaseModel):
    cancel: TeacherCancelInput
    now: datetime


class CloseHold(BaseModel):
    class_id: int
    state: HoldState
    actor: Actor
    now: datetime


class ExtendHold(BaseModel):
    class_id: int
    until: datetime
    actor: Actor
    now: datetime


class Extension(BaseModel):
    """Fireman gives the student more time to book an offered slot."""

    until: datetime
    actor: Actor


class Ending(BaseModel):
    """Fireman ends the hold now: what is still offered is removed."""

    actor: Actor


class HeldSlotBooked(BaseModel):
    class_id: int
    timeslot_id: int
