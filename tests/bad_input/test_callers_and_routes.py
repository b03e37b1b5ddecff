"""Who calls, and where: no or a wrong key is 401 before the body is read, a channel or actor
that may not do this is 403, an unknown route or method a JSON 404/405; none changes anything.

covers: PAR-1, H5-1, LP-2
"""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from store.db import Sessions
from tests.bad_input.checks import World, refused
from tests.helpers import LP, as_

Headers = Callable[[str], dict[str, str]]


@pytest.mark.parametrize(
    "headers_for",
    [
        pytest.param(lambda s: {}, id="nothing"),
        pytest.param(lambda s: {"X-Actor-Id": s}, id="actor only"),
        pytest.param(lambda s: {"Authorization": "Bearer nope", "X-Actor-Id": s}, id="unknown key"),
        pytest.param(lambda s: {"Authorization": "Bearer ", "X-Actor-Id": s}, id="empty key"),
        pytest.param(lambda s: {"Authorization": "Bearer", "X-Actor-Id": s}, id="no key"),
        pytest.param(
            lambda s: {"Authorization": "Basic dev-parent_h5", "X-Actor-Id": s}, id="Basic"
        ),
        pytest.param(lambda s: {"Authorization": "dev-parent_h5", "X-Actor-Id": s}, id="no scheme"),
        pytest.param(lambda s: {"Authorization": "Bearer dev-parent_h5"}, id="no actor"),
        pytest.param(
            lambda s: {"Authorization": "Bearer dev-parent_h5", "X-Actor-Id": ""},
            id="empty actor",
        ),
        pytest.param(
            lambda s: {"Authorization": "Bearer DEV-PARENT_H5", "X-Actor-Id": s},
            id="key in another case",
        ),
    ],
)
async def test_unauthenticated_is_401(
    api: httpx.AsyncClient, db: Sessions, world: World, headers_for: Headers
) -> None:
    s = world.student
    headers = headers_for(str(s))
    booking = {"student_id": s, "timeslot_id": world.slots[0], "course_type": "major"}
    await refused(
        api, db, "POST", "/v1/classes", 401, "unauthenticated", json=booking, headers=headers
    )
    # Unauthenticated comes before looking at the body.
    await refused(api, db, "POST", "/v1/classes", 401, "unauthenticated", json={}, headers=headers)
    await refused(
        api, db, "GET", f"/v1/students/{s}/balances", 401, "unauthenticated", headers=headers
    )


async def test_forbidden_channel_and_actor_are_403(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    s, other = world.student, world.other_student
    booking = {"student_id": s, "timeslot_id": world.slots[0], "course_type": "major"}
    body = await refused(
        api,
        db,
        "POST",
        "/v1/classes",
        403,
        "forbidden_channel",
        json=booking,
        headers=as_("teacher", world.teacher),
    )
    assert body["details"] == {"channel": "teacher", "operation": "book_class"}
    await refused(
        api,
        db,
        "POST",
        f"/v1/students/{s}/grants",
        403,
        "forbidden_channel",
        json={"asset": "stones", "amount": 1_000},
        headers=as_("parent_h5", s),
    )
    body = await refused(
        api,
        db,
        "POST",
        "/v1/classes",
        403,
        "forbidden_actor",
        json={**booking, "student_id": other},
        headers=as_("parent_h5", s),
    )
    assert body["details"]["student_id"] == other


@pytest.mark.parametrize(
    ("method", "url", "status", "code", "extra"),
    [
        ("GET", "/v1/nope", 404, "no_such_route", {}),
        ("GET", "/nope", 404, "no_such_route", {}),
        ("POST", "/v2/classes", 404, "no_such_route", {}),
        ("DELETE", "/v1/classes/1", 405, "method_not_allowed", {}),
        ("PUT", "/v1/classes", 405, "method_not_allowed", {"json": {}}),
    ],
)
async def test_unknown_route_and_method_are_json(
    api: httpx.AsyncClient,
    db: Sessions,
    method: str,
    url: str,
    status: int,
    code: str,
    extra: dict[str, Any],
) -> None:
    await refused(api, db, method, url, status, code, headers=LP, **extra)
