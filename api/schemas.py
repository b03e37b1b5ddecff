"""Response and request models that more than one route module uses, and the one error body
every route answers with."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.types import Id, UtcDatetime
from domain.payment import Payment
from domain.words import Asset, ClassLabel, ClassState, CourseType


class Error(BaseModel):
    """Every refusal and failure: its own code, a message for people, details for programs."""

    code: str = Field(examples=["slot_already_booked"])
    message: str = Field(examples=["the timeslot is already booked"])
    details: dict[str, Any] = Field(examples=[{"timeslot_id": 13}])


# What any route can answer besides its success, each with the Error body (see api/errors.py,
# api/edges.py and domain/errors.py for every code).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Error, "description": description}
    for status, description in (
        (400, "`duplicate_header`: two Authorization or two X-Actor-Id headers."),
        (401, "`unauthenticated`: no or an unknown channel key, or no X-Actor-Id."),
        (
            403,
            "`forbidden_channel`: the channel may not call this; `forbidden_actor` and the like: "
            "it may not act for that student, teacher or class.",
        ),
        (404, "`<entity>_not_found`: an id in the path or the body that does not exist."),
        (408, "`request_timeout`: the body did not arrive within YUEKE_BODY_TIMEOUT_SECONDS."),
        (
            409,
            "A conflict with the current state, e.g. `slot_already_booked`, `student_busy`, "
            "`insufficient_balance`, `conflict_retry`. Nothing changed.",
        ),
        (413, "`body_too_large`: the body is larger than YUEKE_MAX_BODY_BYTES."),
        (
            422,
            "`malformed_body`: the request does not match the schema; or a rule of time, course "
            "or value, e.g. `off_grid`, `outside_booking_window`, `course_type_not_taught`, "
            "`invalid_value`, `idempotency_key_reused`. Nothing changed.",
        ),
        (
            503,
            "`database_unavailable`, `database_busy`, `temporal_unavailable`: a server the API "
            "needs is down or slow. Nothing was decided: retry with the same Idempotency-Key.",
        ),
    )
}


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
    # A seat in this open class (PAR-2, H5-2), or None.
    open_class_id: int | None = None
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
