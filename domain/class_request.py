"""What the class request flow (求课) carries between the API, its workflow and activities."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from domain.channels import Actor
from domain.payment import Payment
from domain.words import Asset, CourseType, RequestState


class ClassRequestInput(BaseModel):
    request_id: int
    student_id: int
    teacher_id: int
    start_at: datetime
    course_type: CourseType
    payment: Payment
    actor: Actor


class RequestView(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    student_id: int
    teacher_id: int
    start_at: datetime
    course_type: CourseType
    state: RequestState
    payment_asset: Asset
    payment_key: str
    payment_amount: int
    deadline: datetime
    keep_slot: bool | None
    class_id: int | None
    reason: str | None
    channel: str
    actor_id: str
    created_at: datetime
    updated_at: datetime


class Approval(BaseModel):
    """TCH-3: the teacher's yes, and whether to keep the slot if the student cancels."""

    actor: Actor
    keep_slot: bool = False


class Rejection(BaseModel):
    """TCH-4: the teacher's no; or the requester's withdrawal."""

    actor: Actor
    reason: str | None = None


class CreateRequest(BaseModel):
    request: ClassRequestInput
    now: datetime


class ApproveRequest(BaseModel):
    request_id: int
    approval: Approval
    now: datetime


class ReleaseRequest(BaseModel):
    request_id: int
    state: RequestState
    reason: str | None
    actor: Actor
    now: datetime
