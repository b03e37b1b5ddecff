"""Bad input: a client that shows a 500 as the answer a caller would get, and a small world of
two teachers with open slots and two students with credits."""

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.bad_input.checks import DAY, HOUR, World
from tests.conftest import T0, Clock
from tests.helpers import client_showing_500s, open_slots, student, teacher
from yueke.settings import Settings


@pytest.fixture
async def api(settings: Settings, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    """As the suite's `api`, but an unhandled error is a 500 response, not an exception."""
    async with client_showing_500s(settings, clock) as client:
        yield client


@pytest.fixture
async def world(api: httpx.AsyncClient) -> World:
    t = await teacher(api)
    other_t = await teacher(api, course_types=("major", "special"))
    s = await student(api, credits={"major": 5})
    other_s = await student(api, credits={"major": 5})
    slots = await open_slots(api, t, *(T0 + 2 * DAY + i * HOUR for i in range(6)))
    [foreign] = await open_slots(api, other_t, T0 + 2 * DAY)
    return World(t, other_t, s, other_s, slots, foreign)
