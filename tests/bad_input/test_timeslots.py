"""Bad input to teachers' timeslots (open, close, availability): each refusal is its own 4xx
code and changes nothing; the grid and the 8-week limit hold in any offset.

covers: TCH-1, TCH-2, FM-6, PAR-1, H5-1
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from store.db import Sessions
from tests.bad_input.checks import DAY, HOUR, World, refused
from tests.conftest import T0
from tests.helpers import FIREMAN, LP, as_

NAIVE = (T0 + 3 * DAY).replace(tzinfo=None).isoformat()


def test_the_naive_time_really_has_no_offset() -> None:
    assert "+" not in NAIVE and not NAIVE.endswith("Z")


@pytest.mark.parametrize(
    "start_at",
    [
        pytest.param([NAIVE], id="no offset"),
        pytest.param([(T0 + 3 * DAY).isoformat(), NAIVE], id="one of two without offset"),
        pytest.param(["2030-01-10 kind of noon"], id="not a time"),
        pytest.param(["2030-02-30T10:00:00+00:00"], id="no such day"),
        pytest.param([], id="none"),
        pytest.param(
            [(T0 + DAY + i * timedelta(minutes=30)).isoformat() for i in range(337)],
            id="337 at once",
        ),
        pytest.param((T0 + 3 * DAY).isoformat(), id="not a list"),
    ],
)
async def test_malformed_opening_is_422(
    api: httpx.AsyncClient, db: Sessions, world: World, start_at: Any
) -> None:
    """covers: TCH-1"""
    t = world.teacher
    await refused(
        api,
        db,
        "POST",
        f"/v1/teachers/{t}/timeslots",
        422,
        "malformed_body",
        json={"start_at": start_at},
        headers=as_("teacher", t),
    )


async def test_malformed_opening_names_the_field(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    """covers: TCH-1"""
    t = world.teacher
    body = await refused(
        api,
        db,
        "POST",
        f"/v1/teachers/{t}/timeslots",
        422,
        "malformed_body",
        json={"start_at": [NAIVE]},
        headers=as_("teacher", t),
    )
    assert body["details"]["errors"][0]["at"].startswith("body.start_at")


@pytest.mark.parametrize(
    "ids_of",
    [
        pytest.param(lambda w: [], id="none"),
        pytest.param(lambda w: ["one"], id="not a number"),
        pytest.param(lambda w: None, id="null"),
        pytest.param(lambda w: [w.slots[0]] * 337, id="337 at once"),
    ],
)
async def test_malformed_closing_is_422(
    api: httpx.AsyncClient, db: Sessions, world: World, ids_of: Callable[[World], Any]
) -> None:
    """covers: TCH-2"""
    t = world.teacher
    await refused(
        api,
        db,
        "POST",
        f"/v1/teachers/{t}/timeslots/close",
        422,
        "malformed_body",
        json={"timeslot_ids": ids_of(world)},
        headers=as_("teacher", t),
    )


WINDOW = {"start_from": T0.isoformat(), "start_to": (T0 + 9 * DAY).isoformat()}
NAIVE_T0 = T0.replace(tzinfo=None).isoformat()


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({**WINDOW, "start_from": NAIVE_T0}, id="start_from without offset"),
        pytest.param({**WINDOW, "start_to": NAIVE_T0}, id="start_to without offset"),
        pytest.param({"start_from": T0.isoformat()}, id="no start_to"),
        pytest.param({**WINDOW, "limit": 0}, id="limit 0"),
        pytest.param({**WINDOW, "limit": 1001}, id="limit 1001"),
        pytest.param({**WINDOW, "teacher_id": "me"}, id="teacher_id not a number"),
        pytest.param({**WINDOW, "course_type": "piano"}, id="unknown course type"),
    ],
)
async def test_malformed_availability_query_is_422(
    api: httpx.AsyncClient, db: Sessions, world: World, params: dict[str, Any]
) -> None:
    """covers: PAR-1, H5-1"""
    await refused(api, db, "GET", "/v1/timeslots", 422, "malformed_body", params=params, headers=LP)


Case = Callable[[World], tuple[str, str, str, dict[str, Any]]]

UNKNOWN: list[Any] = [
    pytest.param(
        lambda w: (
            "POST",
            "/v1/teachers/999/timeslots",
            "teacher_not_found",
            {"json": {"start_at": [(T0 + DAY).isoformat()]}, "headers": FIREMAN},
        ),
        id="opening for an unknown teacher",
    ),
    pytest.param(
        lambda w: (
            "POST",
            f"/v1/teachers/{w.teacher}/timeslots/close",
            "timeslot_not_found",
            {"json": {"timeslot_ids": [w.slots[1], 999]}, "headers": as_("teacher", w.teacher)},
        ),
        id="closing an unknown slot",
    ),
    # Another teacher's slot is not theirs to close: it does not exist for them.
    pytest.param(
        lambda w: (
            "POST",
            f"/v1/teachers/{w.teacher}/timeslots/close",
            "timeslot_not_found",
            {"json": {"timeslot_ids": [w.foreign_slot]}, "headers": as_("teacher", w.teacher)},
        ),
        id="closing another teacher's slot",
    ),
    pytest.param(
        lambda w: ("GET", "/v1/timeslots/999/audit", "timeslot_not_found", {"headers": FIREMAN}),
        id="audit of an unknown slot",
    ),
]


@pytest.mark.parametrize("case", UNKNOWN)
async def test_unknown_ids_are_404_with_their_entity(
    api: httpx.AsyncClient, db: Sessions, world: World, case: Case
) -> None:
    """covers: TCH-1, TCH-2, FM-6"""
    method, url, code, kwargs = case(world)
    body = await refused(api, db, method, url, 404, code, **kwargs)
    assert body["details"]["entity"] == code.removesuffix("_not_found"), body


async def test_closed_slot_is_not_open(api: httpx.AsyncClient, db: Sessions, world: World) -> None:
    """covers: TCH-2, PAR-1, LP-8"""
    t, s, slot = world.teacher, world.student, world.slots[0]
    r = await api.post(
        f"/v1/teachers/{t}/timeslots/close",
        json={"timeslot_ids": [slot]},
        headers=as_("teacher", t),
    )
    assert r.status_code == 200, r.text
    booking = {"student_id": s, "timeslot_id": slot, "course_type": "major"}
    body = await refused(
        api,
        db,
        "POST",
        "/v1/classes",
        409,
        "slot_not_open",
        json=booking,
        headers=as_("parent_h5", s),
    )
    assert body["details"] == {"timeslot_id": slot, "state": "removed"}
    # Closing it again, alone or with an open slot: refused, and the open slot stays open.
    for ids in ([slot], [world.slots[1], slot]):
        await refused(
            api,
            db,
            "POST",
            f"/v1/teachers/{t}/timeslots/close",
            409,
            "slot_not_open",
            json={"timeslot_ids": ids},
            headers=as_("teacher", t),
        )
    await refused(
        api,
        db,
        "POST",
        "/v1/classes/batch",
        409,
        "slot_not_open",
        json={"student_id": s, "timeslot_ids": [world.slots[1], slot], "course_type": "major"},
        headers=LP,
    )


@pytest.mark.parametrize(
    "start",
    [
        "2030-01-10T10:15:00+00:00",
        "2030-01-10T10:00:01+00:00",
        "2030-01-10T10:00:00.000001+00:00",
        "2030-01-10T10:29:59Z",
        "2030-01-10T10:00:00+05:45",  # 04:15 UTC
        "2030-01-10T10:00:00+00:01",
    ],
)
async def test_off_grid_starts_are_refused_and_open_nothing(
    api: httpx.AsyncClient, db: Sessions, world: World, start: str
) -> None:
    """covers: TCH-1, FM-6. One off-grid start opens none of the others."""
    t = world.teacher
    on_grid = (T0 + 3 * DAY + 10 * HOUR).isoformat()
    body = await refused(
        api,
        db,
        "POST",
        f"/v1/teachers/{t}/timeslots",
        422,
        "off_grid",
        json={"start_at": [on_grid, start]},
        headers=as_("teacher", t),
    )
    assert body["details"]["grid_minutes"] == 30


async def test_on_the_grid_in_another_zone_opens(api: httpx.AsyncClient, world: World) -> None:
    """covers: TCH-1. 18:30+08:00 is 10:30 UTC."""
    t = world.teacher
    r = await api.post(
        f"/v1/teachers/{t}/timeslots",
        json={"start_at": ["2030-01-10T18:30:00+08:00"]},
        headers=as_("teacher", t),
    )
    assert r.status_code == 201, r.text
    assert r.json()["opened"][0]["start_at"].startswith("2030-01-10T10:30:00")


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(T0 - timedelta(minutes=30), id="half an hour ago"),
        pytest.param(T0, id="now"),
        pytest.param(T0 - 400 * DAY, id="last year"),
    ],
)
async def test_opening_in_the_past(
    api: httpx.AsyncClient, db: Sessions, world: World, start: datetime
) -> None:
    """covers: TCH-1, FM-6"""
    await refused(
        api,
        db,
        "POST",
        f"/v1/teachers/{world.teacher}/timeslots",
        422,
        "in_past",
        json={"start_at": [(T0 + DAY).isoformat(), start.isoformat()]},
        headers=FIREMAN,
    )


async def test_opening_beyond_eight_weeks(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    """covers: TCH-1. Exactly 8 weeks ahead is allowed, half an hour more is not."""
    t = world.teacher
    url = f"/v1/teachers/{t}/timeslots"
    limit = T0 + timedelta(weeks=8)
    body = await refused(
        api,
        db,
        "POST",
        url,
        422,
        "outside_booking_window",
        json={"start_at": [(limit + timedelta(minutes=30)).isoformat()]},
        headers=as_("teacher", t),
    )
    assert body["details"]["latest"].startswith(limit.date().isoformat())
    r = await api.post(url, json={"start_at": [limit.isoformat()]}, headers=as_("teacher", t))
    assert r.status_code == 201, r.text
