"""The Temporal worker: every workflow and activity of Yueke on one task queue."""

import logging
from collections.abc import Callable
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.worker import Worker

from yueke.activities.auto_booking import WeeklyBookingActivities
from yueke.activities.class_request import ClassRequestActivities
from yueke.activities.contract import ContractActivities
from yueke.activities.overbooking import OverbookedClassActivities, TeacherReservationActivities
from yueke.activities.teacher_cancel import TeacherCancelActivities
from yueke.settings import Settings
from yueke.store.db import Sessions
from yueke.workflows.auto_booking import WeeklyBookingWorkflow
from yueke.workflows.class_request import ClassRequestWorkflow
from yueke.workflows.common import SEARCH_ATTRIBUTES
from yueke.workflows.contract import ContractWorkflow
from yueke.workflows.overbooked_class import OverbookedClassWorkflow
from yueke.workflows.teacher_cancel import TeacherCancelHoldWorkflow
from yueke.workflows.teacher_reservation import TeacherReservationWorkflow

log = logging.getLogger(__name__)

WORKFLOWS: list[type] = [ClassRequestWorkflow, TeacherCancelHoldWorkflow]
ACTIVITY_CLASSES = [ClassRequestActivities, TeacherCancelActivities]
# Issue 4: contracts, weekly booking runs (auto-booking, exclusive teachers).
WORKFLOWS += [ContractWorkflow, WeeklyBookingWorkflow]
ACTIVITY_CLASSES += [ContractActivities, WeeklyBookingActivities]
# Issue 5: over-booking (SD-5).
WORKFLOWS += [OverbookedClassWorkflow, TeacherReservationWorkflow]
ACTIVITY_CLASSES += [OverbookedClassActivities, TeacherReservationActivities]


def activities(sessions: Sessions, settings: Settings) -> list[Callable[..., Any]]:
    """Every @activity.defn method, bound to one instance per activity class."""
    bound = []
    for cls in ACTIVITY_CLASSES:
        instance = cls(sessions, settings.rules)
        bound += [
            getattr(instance, name)
            for name, member in vars(cls).items()
            if hasattr(member, "__temporal_activity_definition")
        ]
    return bound


def build_worker(client: Client, sessions: Sessions, settings: Settings, **options: Any) -> Worker:
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=WORKFLOWS,
        activities=activities(sessions, settings),
        **options,
    )


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register StudentId, TeacherId, Channel and Flow where the server lets us (dev server,
    self-hosted cluster); on Temporal Cloud they are added in its console instead."""
    try:
        known = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        missing = {
            key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
            for key in SEARCH_ATTRIBUTES
            if key.name not in known.custom_attributes
        }
        if missing:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
    except Exception as exc:  # the flows still run; ops lose only the search filters
        log.warning("could not register search attributes: %s", exc)
