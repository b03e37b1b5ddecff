"""What the fake-cancel flow (TMK-4, CC-4) carries between the API, its workflow and
activities."""

from datetime import datetime

from pydantic import BaseModel

from domain.channels import Actor
from domain.words import HoldState


class FakeCancelInput(BaseModel):
    class_id: int
    teacher_id: int
    student_id: int
    reason: str | None
    actor: Actor


class FakeCancelView(BaseModel):
    """The cancelled class and its slot, held for `channel` until `expires_at` (`holding`);
    then `booked` (the channel placed a student: `booked_class_id`) or `expired` (general
    inventory again)."""

    class_id: int
    teacher_id: int
    student_id: int
    channel: str
    timeslot_id: int
    start_at: datetime
    refunded: bool
    state: HoldState
    expires_at: datetime
    booked_class_id: int | None


class FakeCancelStep(BaseModel):
    cancel: FakeCancelInput
    now: datetime


class ReleaseSlot(BaseModel):
    class_id: int
    actor: Actor
    now: datetime


class SlotReleased(BaseModel):
    """What the timer's step found: `expired` (the slot is general again) or `booked`."""

    state: HoldState
    booked_class_id: int | None
