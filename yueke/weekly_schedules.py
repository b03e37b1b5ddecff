"""The weekly booking Schedules (SD-1, SD-6), registered in yueke.schedules.SCHEDULES.

Each starts a WeeklyBookingWorkflow every Monday in the business time zone, at the times of
settings.weekly: exclusive teachers' Level 7 students at 00:00, the other exclusive-teacher
students at 08:00, auto-booking at 12:03; each books the following Monday–Sunday.
"""

from collections.abc import Callable
from datetime import time, timedelta

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
)
from temporalio.common import TypedSearchAttributes

from domain.auto_booking import RunKind, RunRequest
from domain.channels import Actor, Channel
from workflows.auto_booking import WeeklyBookingWorkflow
from workflows.common import FlowKind, search_attributes, weekly_flow
from yueke.settings import Settings

# Who acts in the runs Schedules start: supply-demand's timed jobs.
SCHEDULE_ACTOR = Actor(channel=Channel.supply_demand, id="schedule")


def scheduled_search_attributes(settings: Settings, flow: FlowKind) -> TypedSearchAttributes:
    """What every run a Schedule starts carries, so ops find it by `Flow` like a run started by
    hand: its kind and the channel; no student or teacher, it is for all of them."""
    if not settings.temporal_search_attributes:
        return TypedSearchAttributes.empty
    return search_attributes(flow, channel=SCHEDULE_ACTOR.channel.value)


def _monday_at(settings: Settings, kind: RunKind, at: time) -> Schedule:
    request = RunRequest(kind=kind, actor=SCHEDULE_ACTOR, chunk=settings.weekly.auto_booking_chunk)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            WeeklyBookingWorkflow.run,
            request,
            id=f"{kind.flow_prefix}-weekly",
            task_queue=settings.temporal_task_queue,
            execution_timeout=timedelta(hours=6),
            typed_search_attributes=scheduled_search_attributes(settings, weekly_flow(kind)),
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    day_of_week=[ScheduleRange(1)],  # Monday (0 is Sunday)
                    hour=[ScheduleRange(at.hour)],
                    minute=[ScheduleRange(at.minute)],
                    second=[ScheduleRange(at.second)],
                )
            ],
            time_zone_name=settings.rules.business_time_zone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


WEEKLY_SCHEDULES: dict[str, Callable[[Settings], Schedule]] = {
    "exclusive-booking-l7": lambda s: _monday_at(
        s, RunKind.exclusive_l7, s.weekly.exclusive_l7_booking_at
    ),
    "exclusive-booking": lambda s: _monday_at(s, RunKind.exclusive, s.weekly.exclusive_booking_at),
    "auto-booking": lambda s: _monday_at(s, RunKind.auto, s.weekly.auto_booking_at),
}
