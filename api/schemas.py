"""Response and request models that more than one route module uses."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from api.types import Id, UtcDatetime
from domain.payment import Payment
from domain.words import Asset, ClassLabel, ClassState, CourseType


class ClassOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    student_id: Id
    teacher_id: int | None
    timeslot_id: int | None
    start_at: datetime
    course_type: CourseType
    state: ClassState
    label: ClassLabel | None
    lesson: str | None
    payment_asset: Asset
    payment_key: str
    payment_amount: int
    refunded: bool
    channel: str
    actor_id: str
    created_at: datetime
    updated_at: datetime


class NewRequest(BaseModel):
    student_id: Id
    teacher_id: Id
    start_at: UtcDatetime
    course_type: CourseType
    payment: Payment = Payment()
