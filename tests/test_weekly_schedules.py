"""The weekly booking Schedules on the Temporal dev server (the time-skipping server has no
Schedules): created idempotently, firing on Mondays at the right Asia/Shanghai instants.

covers: SD-1, SD-6
"""

import itertools
import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment

from yueke import schedules
from yueke.settings import Settings
from yueke.weekly_schedules import WEEKLY_SCHEDULES

SHANGHAI = ZoneInfo("Asia/Shanghai")


async def test_weekly_schedules_fire_on_monday_shanghai_times(
    dev_server: WorkflowEnvironment, database_url: str
) -> None:
    settings = Settings(
        database_url=database_url, temporal_task_queue=f"yueke-sched-{uuid.uuid4().hex[:8]}"
    )
    assert WEEKLY_SCHEDULES.keys() <= schedules.SCHEDULES.keys()
    client = dev_server.client
    await schedules.ensure(client, settings)
    await schedules.ensure(client, settings)  # idempotent: updates, never duplicates
    expected = {
        "exclusive-booking-l7": time(0, 0),
        "exclusive-booking": time(8, 0),
        "auto-booking": time(12, 3),
    }
    try:
        for schedule_id, at in expected.items():
            info = (await client.get_schedule_handle(schedule_id).describe()).info
            times = [t.astimezone(SHANGHAI) for t in info.next_action_times]
            assert times, schedule_id
            for moment in times:
                assert moment.weekday() == 0, (schedule_id, moment)
                assert moment.time() == at, (schedule_id, moment)
            gaps = {b - a for a, b in itertools.pairwise(times)}
            assert gaps <= {timedelta(weeks=1)}
            assert times[0] > datetime.now(UTC)
    finally:
        for schedule_id in schedules.SCHEDULES:
            await client.get_schedule_handle(schedule_id).delete()
