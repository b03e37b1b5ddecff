"""What every flow shares: search attributes for ops, activity options, refusals."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.refusal import Refusal

STUDENT_ID = SearchAttributeKey.for_keyword("StudentId")
TEACHER_ID = SearchAttributeKey.for_keyword("TeacherId")
CHANNEL = SearchAttributeKey.for_keyword("Channel")
FLOW = SearchAttributeKey.for_keyword("Flow")
SEARCH_ATTRIBUTES = (STUDENT_ID, TEACHER_ID, CHANNEL, FLOW)

# Store activities are short transactions; retried until they succeed or refuse.
STORE_STEP = workflow.ActivityConfig(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
)


def search_attributes(
    flow: str, *, student_id: int, teacher_id: int, channel: str
) -> TypedSearchAttributes:
    """Set by the starter, so ops find every flow in the Web UI by student, teacher, channel and
    kind of flow from its first moment."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(FLOW, flow),
            SearchAttributePair(STUDENT_ID, str(student_id)),
            SearchAttributePair(TEACHER_ID, str(teacher_id)),
            SearchAttributePair(CHANNEL, channel),
        ]
    )


def refusal_of(error: ActivityError) -> Refusal:
    """The store's refusal inside an activity failure; anything else is not ours to handle."""
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.details:
        return Refusal.model_validate(cause.details[0])
    raise error


def refuse(refusal: Refusal) -> ApplicationError:
    """Fail an update with the refusal, for the API to answer as it would a direct call."""
    return ApplicationError(refusal.message, refusal.model_dump(mode="json"), type=refusal.code)
