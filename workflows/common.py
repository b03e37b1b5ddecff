"""What every flow shares: search attributes for ops, activity options, refusals."""

from collections.abc import Iterable
from datetime import timedelta
from enum import StrEnum
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.types import MethodAsyncSingleParam

with workflow.unsafe.imports_passed_through():
    from domain.auto_booking import RunKind
    from domain.refusal import Refusal

STUDENT_ID = SearchAttributeKey.for_keyword("StudentId")
# A list: a contract has two teachers, and `TeacherId = "7"` matches a list holding "7".
TEACHER_ID = SearchAttributeKey.for_keyword_list("TeacherId")
CHANNEL = SearchAttributeKey.for_keyword("Channel")
FLOW = SearchAttributeKey.for_keyword("Flow")
# A webhook subscription's flow: active or paused (workflows/webhook_delivery.py).
WEBHOOK_STATE = SearchAttributeKey.for_keyword("WebhookState")
SEARCH_ATTRIBUTES = (STUDENT_ID, TEACHER_ID, CHANNEL, FLOW, WEBHOOK_STATE)

SelfType = TypeVar("SelfType")
ParamType = TypeVar("ParamType")
ReturnType = TypeVar("ReturnType")


class FlowKind(StrEnum):
    """The value of `Flow`, one per kind of flow: what ops type in the Web UI's search."""

    class_request = "class_request"
    teacher_cancel = "teacher_cancel"
    fake_cancel = "fake_cancel"
    contract = "contract"
    auto_booking = "auto_booking"
    exclusive_booking = "exclusive_booking"
    overbook = "overbook"
    teacher_reservation = "teacher_reservation"
    operation_key_cleanup = "operation_key_cleanup"
    webhook_delivery = "webhook_delivery"


def weekly_flow(kind: RunKind) -> FlowKind:
    """Both exclusive-teacher runs (Level 7 and the others) are one kind to search for."""
    return FlowKind.auto_booking if kind is RunKind.auto else FlowKind.exclusive_booking


# Store activities are short transactions; retried until they succeed or refuse.
STORE_STEP = workflow.ActivityConfig(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
)
# The same, run as a local activity (in the worker's workflow task, recorded as a marker).
# Retries more than 10 s apart wait on a timer instead of inside the workflow task, which
# would otherwise be kept alive (three history events every few seconds) through an outage.
LOCAL_STORE_STEP = workflow.LocalActivityConfig(
    start_to_close_timeout=STORE_STEP["start_to_close_timeout"],
    retry_policy=STORE_STEP["retry_policy"],
    local_retry_threshold=timedelta(seconds=10),
)


async def store_step(
    activity: MethodAsyncSingleParam[SelfType, ParamType, ReturnType],
    step: ParamType,
    *,
    local: bool,
) -> ReturnType:
    """A store step: a local activity where the flow's patch says so, else an activity."""
    if local:
        return await workflow.execute_local_activity_method(activity, step, **LOCAL_STORE_STEP)
    return await workflow.execute_activity_method(activity, step, **STORE_STEP)


def search_attributes(
    flow: FlowKind,
    *,
    channel: str,
    student_id: int | None = None,
    teacher_ids: Iterable[int] = (),
) -> TypedSearchAttributes:
    """Set by the starter, so ops find every flow in the Web UI by kind of flow, channel,
    student and teacher from its first moment. An attribute without a value is left out: a
    flow of all students has no `StudentId`, rather than a made-up one."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(FLOW, flow.value),
        SearchAttributePair(CHANNEL, channel),
    ]
    if student_id is not None:
        pairs.append(SearchAttributePair(STUDENT_ID, str(student_id)))
    if teachers := [str(t) for t in teacher_ids]:
        pairs.append(SearchAttributePair(TEACHER_ID, teachers))
    return TypedSearchAttributes(pairs)


def refusal_of(error: ActivityError | ApplicationError) -> Refusal:
    """The store's refusal inside an activity failure (a local activity fails with the
    ApplicationError itself); anything else is not ours to handle."""
    cause = error.cause if isinstance(error, ActivityError) else error
    if isinstance(cause, ApplicationError) and cause.details:
        return Refusal.model_validate(cause.details[0])
    raise error


def refuse(refusal: Refusal) -> ApplicationError:
    """Fail an update with the refusal, for the API to answer as it would a direct call."""
    return ApplicationError(refusal.message, refusal.model_dump(mode="json"), type=refusal.code)
