"""The Temporal worker: the one list of Yueke's workflows and activities on its task queue.

`python worker.py` (or `yueke worker`) runs it against DATABASE_URL and TEMPORAL_ADDRESS.
"""

import asyncio
import logging
import signal
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
    RemoveSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import StoreActivities
from activities.auto_booking import WeeklyBookingActivities
from activities.class_request import ClassRequestActivities
from activities.contract import ContractActivities
from activities.fake_cancel import FakeCancelActivities
from activities.operation_key_cleanup import OperationKeyActivities
from activities.overbooking import OverbookedClassActivities, TeacherReservationActivities
from activities.teacher_cancel import TeacherCancelActivities
from activities.webhook_delivery import WebhookActivities
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
from workflows.webhook_delivery import WebhookDeliveryWorkflow
from yueke import schedules, telemetry
from yueke.settings import Settings
from yueke.temporal import connect_when_up, exit_after_temporal

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
    WebhookDeliveryWorkflow,
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
    WebhookActivities,
]


def activities(db: Sessions, settings: Settings) -> list[Callable[..., Any]]:
    """Every @activity.defn method, bound to one instance per activity class."""
    bound = []
    for cls in ACTIVITY_CLASSES:
        instance = (
            WebhookActivities(db, settings.rules, settings.webhooks)
            if cls is WebhookActivities
            else cls(db, settings.rules)
        )
        bound += [
            getattr(instance, name)
            for name, member in vars(cls).items()
            if hasattr(member, "__temporal_activity_definition")
        ]
    return bound


# The sandbox, with Yueke's own workflow modules passed through: they are deterministic and do
# no I/O, so re-importing one into a fresh module for every workflow run (the default) buys
# nothing and cost the worker about 3.5 CPU-ms per class request. The tests run every flow in
# the default sandbox, which re-imports them and so still catches a module that breaks the rules.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
)


def build_worker(client: Client, db: Sessions, settings: Settings, **options: Any) -> Worker:
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=WORKFLOWS,
        activities=activities(db, settings),
        **{"workflow_runner": WORKFLOW_RUNNER, **options},
    )


RETYPE_COMMAND = "yueke search-attributes --retype"


async def _registered(client: Client, namespace: str) -> dict[str, int]:
    known = (
        await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
    ).custom_attributes
    return {name: int(value) for name, value in known.items()}


def _mistyped(known: dict[str, int]) -> list[str]:
    """Ours registered with another type (TeacherId as Keyword, by an older namespace)."""
    return [
        key.name
        for key in SEARCH_ATTRIBUTES
        if key.name in known and known[key.name] != int(key.indexed_value_type)
    ]


async def _add_missing(client: Client, namespace: str, known: dict[str, int]) -> None:
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type)
        for key in SEARCH_ATTRIBUTES
        if key.name not in known
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register StudentId, TeacherId (a keyword list), Channel, Flow and WebhookState where the
    server lets us (dev server, self-hosted cluster); on Temporal Cloud they are added in its
    console instead.

    One registered with another type is left alone, with an error that names the operator's
    command: a worker never removes one, since removing and adding again is not atomic and
    workers start concurrently. Until it is retyped the server refuses flows whose value does
    not fit (a contract's two teachers in a Keyword)."""
    try:
        known = await _registered(client, namespace)
        if mistyped := _mistyped(known):
            log.error(
                "search attributes %s in namespace %s have another type than ours; flows "
                "tagged with them are refused until an operator runs `%s` (or `temporal "
                "operator search-attribute remove --name <name>` and create it again with "
                "the type in workflows/common.py, TeacherId as KeywordList)",
                mistyped,
                namespace,
                RETYPE_COMMAND,
            )
        await _add_missing(client, namespace, known)
    except Exception as exc:  # the flows still run; ops lose only the search filters
        log.warning("could not register search attributes: %s", exc)


async def retype_search_attributes(client: Client, namespace: str) -> list[str]:
    """The operator's action: remove ours registered with another type, then register every
    missing one with ours; returns the retyped names. Flows tagged under the other type are no
    longer found by that attribute (still by the others and by their id). Run it with no
    worker starting flows."""
    known = await _registered(client, namespace)
    if mistyped := _mistyped(known):
        await client.operator_service.remove_search_attributes(
            RemoveSearchAttributesRequest(namespace=namespace, search_attributes=mistyped)
        )
        known = {name: value for name, value in known.items() if name not in mistyped}
    await _add_missing(client, namespace, known)
    return mistyped


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Connect (retrying until Temporal is up), register search attributes and schedules, and
    poll until `stop` is set; then finish the running activities (up to
    worker_shutdown_seconds) and return."""
    tracing = telemetry.tracer_provider(settings, "yueke-worker")
    connecting = asyncio.ensure_future(
        connect_when_up(
            settings,
            None,
            interceptors=telemetry.temporal_interceptors(tracing),
            runtime=telemetry.worker_runtime(settings),
        )
    )
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not connecting.done():
        connecting.cancel()
        log.info("stopped before Temporal at %s answered", settings.temporal_target)
        return
    client = connecting.result()
    await ensure_search_attributes(client, settings.temporal_namespace)
    await schedules.ensure(client, settings)
    engine = create_engine(
        settings.database_url or "",
        application_name="yueke-worker",
        pool_size=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout,
    )
    worker = build_worker(
        client,
        sessions(engine),
        settings,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_seconds),
    )
    try:
        async with worker:
            log.info(
                "worker polling task queue %s in namespace %s at %s%s",
                settings.temporal_task_queue,
                settings.temporal_namespace,
                settings.temporal_target,
                f", metrics at http://{settings.worker_metrics_address}/metrics"
                if settings.worker_metrics_address
                else "",
            )
            await stop.wait()
            log.info("stopping: finishing running activities")
    finally:
        await engine.dispose()
        if tracing is not None:
            tracing.shutdown()
    log.info("worker stopped")


async def serve(settings: Settings) -> None:
    """`run` until SIGTERM or Ctrl-C (SIGINT), either of which stops it gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run(settings, stop)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    if not settings.database_url:
        raise SystemExit("set DATABASE_URL (postgresql://user:password@host:5432/database)")
    asyncio.run(serve(settings))
    exit_after_temporal()


if __name__ == "__main__":
    main()
