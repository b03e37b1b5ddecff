"""The Temporal worker: the one list of Yueke's workflows and activities on its task queue.

`python worker.py` (or `yueke worker`) runs it against DATABASE_URL and TEMPORAL_ADDRESS.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
    RemoveSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.worker import Worker

from activities import StoreActivities
from activities.auto_booking import WeeklyBookingActivities
from activities.class_request import ClassRequestActivities
from activities.contract import ContractActivities
from activities.fake_cancel import FakeCancelActivities
from activities.operation_key_cleanup import OperationKeyActivities
from activities.overbooking import OverbookedClassActivities, TeacherReservationActivities
from activities.teacher_cancel import TeacherCancelActivities
from store.db import Sessions, create_engine, sessions
from workflows.auto_booking import WeeklyBookingWorkflow
from workflows.class_request import ClassRequestWorkflow
from workflows.common import SEARCH_ATTRIBUTES
from workflows.contract import ContractWorkflow
from workflows.fake_cancel import FakeCancelWorkflow
from workflows.operation_key_cleanup import OperationKeyCleanupWorkflow
from workflows.overbooked_class import OverbookedClassWorkflow
from workflows.teacher_cancel import TeacherCancelHoldWorkflow
from workflows.teacher_reservation import TeacherReservationWorkflow
from yueke import schedules
from yueke.settings import Settings
from yueke.temporal import connect_when_up

log = logging.getLogger("yueke.worker")

WORKFLOWS: list[type] = [
    ClassRequestWorkflow,
    TeacherCancelHoldWorkflow,
    ContractWorkflow,
    WeeklyBookingWorkflow,
    OverbookedClassWorkflow,
    TeacherReservationWorkflow,
    OperationKeyCleanupWorkflow,
    FakeCancelWorkflow,
]

ACTIVITY_CLASSES: list[type[StoreActivities]] = [
    ClassRequestActivities,
    TeacherCancelActivities,
    ContractActivities,
    WeeklyBookingActivities,
    OverbookedClassActivities,
    TeacherReservationActivities,
    OperationKeyActivities,
    FakeCancelActivities,
]


def activities(db: Sessions, settings: Settings) -> list[Callable[..., Any]]:
    """Every @activity.defn method, bound to one instance per activity class."""
    bound = []
    for cls in ACTIVITY_CLASSES:
        instance = cls(db, settings.rules)
        bound += [
            getattr(instance, name)
            for name, member in vars(cls).items()
            if hasattr(member, "__temporal_activity_definition")
        ]
    return bound


def build_worker(client: Client, db: Sessions, settings: Settings, **options: Any) -> Worker:
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=WORKFLOWS,
        activities=activities(db, settings),
        **options,
    )


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register StudentId, TeacherId (a keyword list), Channel and Flow where the server lets
    us (dev server, self-hosted cluster); on Temporal Cloud they are added in its console
    instead.

    One registered with another type (TeacherId as Keyword) is removed and added again with
    ours, because the server refuses a flow whose value does not fit the registered type (a
    contract's two teachers in a Keyword). Flows tagged under the other type are no longer
    found by that attribute (still by the others and by their id)."""
    try:
        known = (
            await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace=namespace)
            )
        ).custom_attributes
        retyped = [
            key.name
            for key in SEARCH_ATTRIBUTES
            if key.name in known and int(known[key.name]) != int(key.indexed_value_type)
        ]
        if retyped:
            log.warning("search attributes %s have another type: registered again", retyped)
            await client.operator_service.remove_search_attributes(
                RemoveSearchAttributesRequest(namespace=namespace, search_attributes=retyped)
            )
        missing = {
            key.name: IndexedValueType.ValueType(key.indexed_value_type)
            for key in SEARCH_ATTRIBUTES
            if key.name not in known or key.name in retyped
        }
        if missing:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
    except Exception as exc:  # the flows still run; ops lose only the search filters
        log.warning("could not register search attributes: %s", exc)


async def run(settings: Settings, client: Client | None = None) -> None:
    """Connect, register search attributes and schedules, and poll until stopped."""
    client = client or await connect_when_up(settings)
    await ensure_search_attributes(client, settings.temporal_namespace)
    await schedules.ensure(client, settings)
    engine = create_engine(settings.database_url or "", application_name="yueke-worker")
    try:
        await build_worker(client, sessions(engine), settings).run()
    finally:
        await engine.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    if not settings.database_url:
        raise SystemExit("set DATABASE_URL (postgresql://user:password@host:5432/database)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(settings))


if __name__ == "__main__":
    main()
