"""Temporal Schedules: the timed jobs of supply-demand, created idempotently at start-up.

Each entry is a schedule id and a function of the settings giving its Schedule; `ensure`
creates what is missing and updates what exists, so every worker start converges on the
settings. Times are set in Asia/Shanghai with hour, minute and second explicit.
"""

import logging
from collections.abc import Callable
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from workflows.common import FlowKind
from yueke.settings import Settings
from yueke.weekly_schedules import WEEKLY_SCHEDULES, scheduled_search_attributes

log = logging.getLogger(__name__)

# schedule id -> the Schedule it should be, given the settings. Flows add theirs here.
SCHEDULES: dict[str, Callable[[Settings], Schedule]] = {}


def teacher_reservation(settings: Settings) -> Schedule:
    """SD-5b: at :28 and :58 of every hour, reserve teachers for the next 14 days."""
    from workflows.teacher_reservation import TeacherReservationWorkflow

    rules = settings.rules.overbooking
    return Schedule(
        action=ScheduleActionStartWorkflow(
            TeacherReservationWorkflow.run,
            id="teacher-reservation",
            task_queue=settings.temporal_task_queue,
            execution_timeout=timedelta(minutes=25),
            typed_search_attributes=scheduled_search_attributes(
                settings, FlowKind.teacher_reservation
            ),
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    hour=[ScheduleRange(0, 23)],
                    minute=[ScheduleRange(m) for m in rules.reservation_minutes],
                    second=[ScheduleRange(rules.reservation_second)],
                )
            ],
            time_zone_name=rules.reservation_time_zone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


SCHEDULES["teacher-reservation"] = teacher_reservation


def operation_key_cleanup(settings: Settings) -> Schedule:
    """Every hour at :17 (UTC), delete the operation keys older than the retention (7 days)."""
    from domain.operation_key_cleanup import KeyCleanup
    from workflows.operation_key_cleanup import OperationKeyCleanupWorkflow

    return Schedule(
        action=ScheduleActionStartWorkflow(
            OperationKeyCleanupWorkflow.run,
            KeyCleanup(retention=settings.operation_key_retention),
            id="operation-key-cleanup",
            task_queue=settings.temporal_task_queue,
            execution_timeout=timedelta(minutes=30),
            typed_search_attributes=scheduled_search_attributes(
                settings, FlowKind.operation_key_cleanup
            ),
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    hour=[ScheduleRange(0, 23)],
                    minute=[ScheduleRange(17)],
                    second=[ScheduleRange(0)],
                )
            ]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


SCHEDULES["operation-key-cleanup"] = operation_key_cleanup
# Exclusive-teacher booking (SD-1) and auto-booking (SD-6), every Monday.
SCHEDULES.update(WEEKLY_SCHEDULES)


async def ensure(client: Client, settings: Settings) -> None:
    for schedule_id, build in SCHEDULES.items():
        schedule = build(settings)
        try:
            await client.create_schedule(schedule_id, schedule)
            log.info("created schedule %s", schedule_id)
        except ScheduleAlreadyRunningError:

            async def replace(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=new)

            await client.get_schedule_handle(schedule_id).update(replace)
