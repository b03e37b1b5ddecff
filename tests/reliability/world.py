"""Seeding a reliability test's world through the real HTTP API, and the times it books at.

The API under test is a process with the real clock, so times are real: slots on the :00/:30
grid a couple of days ahead (inside the booking window, and far enough out that a student's
cancel is refunded).
"""

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import httpx

from tests.helpers import open_slots, student, teacher

T = TypeVar("T")
HALF_HOUR = timedelta(minutes=30)


def hour_ahead(days: float) -> datetime:
    """The first whole hour at least `days` from now."""
    at = datetime.now(UTC) + timedelta(days=days)
    return at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


async def gather_bounded(jobs: list[Awaitable[T]], at_once: int = 8) -> list[T]:
    gate = asyncio.Semaphore(at_once)

    async def one(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def teachers_with_slots(
    http: httpx.AsyncClient, teachers: int, starts: list[datetime]
) -> list[tuple[int, list[int]]]:
    """Teachers (foreign, major), each with an open slot at every start."""
    made = []
    for _ in range(teachers):
        t = await teacher(http)
        made.append((t, await open_slots(http, t, *starts)))
    return made


async def students(http: httpx.AsyncClient, count: int, major_credits: int) -> list[int]:
    return await gather_bounded(
        [student(http, credits={"major": major_credits}) for _ in range(count)]
    )
