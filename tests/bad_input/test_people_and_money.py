"""Bad input to teachers, students, grants, coupons, balances and the ledger: each refusal is
its own 4xx code and changes nothing, and money stays consistent.

covers: PAR-1, H5-1, LP-2, LP-8
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from store.db import Sessions
from tests.bad_input.checks import DAY, HOUR, MINUTE, World, assert_error_shape, refused
from tests.conftest import T0, Clock
from tests.helpers import (
    CC,
    FIREMAN,
    LP,
    as_,
    assert_money_consistent,
    balances,
    grant,
    snapshot,
    student,
)

NAIVE = (T0 + 3 * DAY).replace(tzinfo=None).isoformat()
Url = Callable[[World], str]


def grants(w: World) -> str:
    return f"/v1/students/{w.student}/grants"


def coupons(w: World) -> str:
    return f"/v1/students/{w.student}/coupons"


def teachers(w: World) -> str:
    return "/v1/teachers"


def students(w: World) -> str:
    return "/v1/students"


@pytest.mark.parametrize(
    ("url_of", "headers", "body"),
    [
        (grants, CC, {"asset": "credit", "amount": 0, "course_type": "major"}),
        (grants, CC, {"asset": "credit", "amount": -1, "course_type": "major"}),
        (grants, CC, {"asset": "credit", "amount": 100_001, "course_type": "major"}),
        (grants, CC, {"asset": "credit", "amount": "many", "course_type": "major"}),
        (grants, CC, {"asset": "gold", "amount": 1}),
        (grants, CC, {"asset": "credit", "amount": 1, "course_type": "piano"}),
        (grants, CC, {"amount": 1, "course_type": "major"}),
        (coupons, CC, {"course_type": "major", "expires_at": NAIVE}),
        (coupons, CC, {"course_type": "major"}),
        (coupons, CC, {"course_type": "piano", "expires_at": (T0 + DAY).isoformat()}),
        (teachers, FIREMAN, {"name": "T", "kind": "alien", "course_types": ["major"]}),
        (teachers, FIREMAN, {"name": "T", "kind": "foreign", "course_types": []}),
        (teachers, FIREMAN, {"name": "", "kind": "foreign", "course_types": ["major"]}),
        (teachers, FIREMAN, {"name": "T", "kind": "foreign", "course_types": ["piano"]}),
        (teachers, FIREMAN, {"kind": "foreign", "course_types": ["major"]}),
        (students, CC, {"name": "S", "level": 21}),
        (students, CC, {"name": "S", "level": -1}),
        (students, CC, {"level": 1}),
    ],
)
async def test_malformed_bodies_are_422_malformed_body(
    api: httpx.AsyncClient,
    db: Sessions,
    world: World,
    url_of: Url,
    headers: dict[str, str],
    body: dict[str, Any],
) -> None:
    await refused(api, db, "POST", url_of(world), 422, "malformed_body", json=body, headers=headers)


@pytest.mark.parametrize(
    ("url_of", "params"),
    [
        pytest.param(lambda w: "/v1/teachers/1.5", None, id="teacher id a fraction"),
        pytest.param(lambda w: "/v1/students/x/balances", None, id="student id a letter"),
        pytest.param(lambda w: f"/v1/students/{w.student}/ledger", {"limit": 0}, id="limit 0"),
        pytest.param(
            lambda w: f"/v1/students/{w.student}/ledger", {"before_id": "last"}, id="before_id"
        ),
    ],
)
async def test_malformed_paths_and_queries_are_422(
    api: httpx.AsyncClient,
    db: Sessions,
    world: World,
    url_of: Url,
    params: dict[str, Any] | None,
) -> None:
    if params is None:
        await refused(api, db, "GET", url_of(world), 422, "malformed_body", headers=FIREMAN)
    else:
        await refused(
            api, db, "GET", url_of(world), 422, "malformed_body", params=params, headers=CC
        )


UNKNOWN: list[tuple[str, str, str, dict[str, Any]]] = [
    ("GET", "/v1/teachers/999", "teacher_not_found", {"headers": LP}),
    ("GET", "/v1/teachers/-1", "teacher_not_found", {"headers": LP}),
    (
        "POST",
        "/v1/students",
        "teacher_not_found",
        {"json": {"name": "S", "exclusive_teacher_id": 999}, "headers": CC},
    ),
    ("GET", "/v1/students/999", "student_not_found", {"headers": CC}),
    ("GET", "/v1/students/999/balances", "student_not_found", {"headers": CC}),
    ("GET", "/v1/students/999/ledger", "student_not_found", {"headers": CC}),
    ("GET", "/v1/students/999/classes", "student_not_found", {"headers": CC}),
    (
        "POST",
        "/v1/students/999/grants",
        "student_not_found",
        {"json": {"asset": "stones", "amount": 5}, "headers": CC},
    ),
    (
        "POST",
        "/v1/students/999/coupons",
        "student_not_found",
        {"json": {"course_type": "major", "expires_at": (T0 + DAY).isoformat()}, "headers": CC},
    ),
]


@pytest.mark.parametrize(("method", "url", "code", "kwargs"), UNKNOWN)
async def test_unknown_ids_are_404_with_their_entity(
    api: httpx.AsyncClient,
    db: Sessions,
    world: World,
    method: str,
    url: str,
    code: str,
    kwargs: dict[str, Any],
) -> None:
    body = await refused(api, db, method, url, 404, code, **kwargs)
    assert body["details"]["entity"] == code.removesuffix("_not_found"), body


async def test_insufficient_balance_changes_nothing(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    """covers: PAR-1, H5-1, LP-8"""
    t = world.teacher
    poor = await student(api)
    await grant(api, poor, "stones", 99)  # a major class costs 100 stones
    await grant(api, poor, "credit", 3, "special")  # credits of another course type
    slot = world.slots[0]
    for payment in ({"asset": "credit"}, {"asset": "stones"}):
        body = await refused(
            api,
            db,
            "POST",
            "/v1/classes",
            409,
            "insufficient_balance",
            json={
                "student_id": poor,
                "timeslot_id": slot,
                "course_type": "major",
                "payment": payment,
            },
            headers=as_("parent_pc", poor),
        )
        assert body["details"]["asset"] == payment["asset"]
    # Two credits for a batch of three: none is booked.
    await grant(api, poor, "credit", 2, "major")
    await refused(
        api,
        db,
        "POST",
        "/v1/classes/batch",
        409,
        "insufficient_balance",
        json={"student_id": poor, "timeslot_ids": world.slots[:3], "course_type": "major"},
        headers=LP,
    )
    assert (await balances(api, poor))["credits"] == {"major": 2, "special": 3}
    assert (await balances(api, poor))["stones"] == 99
    avail = await api.get(
        "/v1/timeslots",
        params={
            "start_from": T0.isoformat(),
            "start_to": (T0 + 9 * DAY).isoformat(),
            "teacher_id": t,
        },
        headers=LP,
    )
    assert [x["id"] for x in avail.json()] == world.slots
    await assert_money_consistent(db)


async def test_coupons_expired_used_and_for_another_course_type(
    api: httpx.AsyncClient, db: Sessions, clock: Clock, world: World
) -> None:
    """covers: PAR-1, H5-1"""
    s = world.student

    async def coupon(course_type: str, expires_in: timedelta) -> int:
        r = await api.post(
            f"/v1/students/{s}/coupons",
            json={"course_type": course_type, "expires_at": (clock.now + expires_in).isoformat()},
            headers=CC,
        )
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def pay(coupon_id: int, slot: int, course_type: str = "major") -> dict[str, Any]:
        return {
            "json": {
                "student_id": s,
                "timeslot_id": slot,
                "course_type": course_type,
                "payment": {"asset": "coupon", "coupon_id": coupon_id},
            },
            "headers": as_("parent_h5", s),
        }

    soon, later = await coupon("major", HOUR), await coupon("major", 10 * DAY)
    special = await coupon("special", 10 * DAY)
    clock.advance(2 * HOUR)
    body = await refused(
        api, db, "POST", "/v1/classes", 409, "coupon_expired", **pay(soon, world.slots[0])
    )
    assert body["details"]["coupon_id"] == soon
    await refused(
        api,
        db,
        "POST",
        "/v1/classes",
        422,
        "coupon_wrong_course_type",
        **pay(special, world.slots[0]),
    )
    r = await api.post("/v1/classes", **pay(later, world.slots[0]))
    assert r.status_code == 201, r.text
    await refused(api, db, "POST", "/v1/classes", 409, "coupon_used", **pay(later, world.slots[1]))
    # Granting a coupon that has already expired is refused too.
    await refused(
        api,
        db,
        "POST",
        f"/v1/students/{s}/coupons",
        409,
        "coupon_expired",
        json={"course_type": "major", "expires_at": (clock.now - MINUTE).isoformat()},
        headers=CC,
    )
    await assert_money_consistent(db)


@pytest.mark.parametrize(
    "grant_body",
    [
        pytest.param({"asset": "credit", "amount": 1}, id="credits without a course type"),
        pytest.param(
            {"asset": "coupon", "amount": 1, "course_type": "major"}, id="a coupon as a grant"
        ),
    ],
)
async def test_grants_refused_with_specific_codes(
    api: httpx.AsyncClient, db: Sessions, world: World, grant_body: dict[str, Any]
) -> None:
    """Credits need a course type; coupons have their own route. Each refusal names its own
    code, not the generic base-class one."""
    before = await snapshot(db)
    r = await api.post(f"/v1/students/{world.student}/grants", json=grant_body, headers=CC)
    assert r.status_code == 422, r.text
    body = assert_error_shape(r)
    assert body["code"] not in ("domain_error", ""), body
    assert await snapshot(db) == before
