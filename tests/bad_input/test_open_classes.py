"""Bad input to open classes and replays: each refusal is its own 4xx code and changes nothing;
odd ids and text are never a 500.

covers: CUR-2, CLS-1, PAR-2, H5-2
"""

from typing import Any

import httpx
import pytest

from store.db import Sessions
from tests.bad_input.checks import DAY, HOUR, Odd, World, no_problems, odd, refused
from tests.conftest import T0, Clock
from tests.helpers import CC, as_, book, grant

CURRICULUM = as_("curriculum", "cur-1")


async def listed_class(api: httpx.AsyncClient, slot: int, capacity: int = 5) -> int:
    body = {"timeslot_id": slot, "title": "Colours", "capacity": capacity}
    r = await api.post("/v1/open-classes", json=body, headers=CURRICULUM)
    assert r.status_code == 201, r.text
    open_class_id = int(r.json()["id"])
    r = await api.post(f"/v1/open-classes/{open_class_id}/list", headers=CURRICULUM)
    assert r.status_code == 200, r.text
    return open_class_id


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"title": "T", "capacity": 5}, id="no timeslot"),
        pytest.param({"timeslot_id": "1", "title": "T", "capacity": 5}, id="id as text"),
        pytest.param({"timeslot_id": 1, "title": "", "capacity": 5}, id="empty title"),
        pytest.param({"timeslot_id": 1, "title": "a\x00b", "capacity": 5}, id="NUL in title"),
        pytest.param({"timeslot_id": 1, "title": "x" * 201, "capacity": 5}, id="long title"),
        pytest.param(
            {"timeslot_id": 1, "title": "T", "description": "d" * 4001, "capacity": 5},
            id="long description",
        ),
        pytest.param({"timeslot_id": 1, "title": "T", "capacity": 0}, id="no seats"),
        pytest.param({"timeslot_id": 1, "title": "T", "capacity": 10_001}, id="too many seats"),
        pytest.param({"timeslot_id": 1, "title": "T", "capacity": 2.5}, id="half a seat"),
    ],
)
async def test_malformed_creation_is_422(
    api: httpx.AsyncClient, db: Sessions, world: World, body: dict[str, Any]
) -> None:
    await refused(
        api, db, "POST", "/v1/open-classes", 422, "malformed_body", json=body, headers=CURRICULUM
    )


async def test_creation_on_a_slot_that_is_not_free(
    api: httpx.AsyncClient, db: Sessions, world: World, clock: Clock
) -> None:
    body = {"title": "T", "capacity": 5}
    await refused(
        api,
        db,
        "POST",
        "/v1/open-classes",
        404,
        "timeslot_not_found",
        json={**body, "timeslot_id": 10**12},
        headers=CURRICULUM,
    )
    booked = await book(api, world.student, world.slots[0])
    assert booked.status_code == 201, booked.text
    await refused(
        api,
        db,
        "POST",
        "/v1/open-classes",
        409,
        "slot_already_booked",
        json={**body, "timeslot_id": world.slots[0]},
        headers=CURRICULUM,
    )
    r = await api.post(
        f"/v1/teachers/{world.teacher}/timeslots/close",
        json={"timeslot_ids": [world.slots[1]]},
        headers=as_("teacher", world.teacher),
    )
    assert r.status_code == 200, r.text
    await refused(
        api,
        db,
        "POST",
        "/v1/open-classes",
        409,
        "slot_not_open",
        json={**body, "timeslot_id": world.slots[1]},
        headers=CURRICULUM,
    )
    clock.now = T0 + 2 * DAY + 2 * HOUR  # the start of slots[2]
    await refused(
        api,
        db,
        "POST",
        "/v1/open-classes",
        422,
        "in_past",
        json={**body, "timeslot_id": world.slots[2]},
        headers=CURRICULUM,
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="nothing to change"),
        pytest.param({"title": None}, id="only a null"),
        pytest.param({"capacity": 0}, id="no seats"),
        pytest.param({"capacity": -3}, id="negative"),
        pytest.param({"title": ""}, id="empty title"),
        pytest.param({"seats_taken": 0}, id="unknown field only"),
    ],
)
async def test_malformed_edit_is_422(
    api: httpx.AsyncClient, db: Sessions, world: World, body: dict[str, Any]
) -> None:
    oc = await listed_class(api, world.slots[0])
    await refused(
        api,
        db,
        "PATCH",
        f"/v1/open-classes/{oc}",
        422,
        "malformed_body",
        json=body,
        headers=CURRICULUM,
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"asset": "coupon", "amount": 1}, id="coupon"),
        pytest.param({"asset": "credit", "amount": 0}, id="free"),
        pytest.param({"asset": "stones", "amount": 100_001}, id="too dear"),
        pytest.param({"asset": "gold", "amount": 1}, id="no such asset"),
        pytest.param({"amount": 1}, id="no asset"),
    ],
)
async def test_malformed_replay_price_is_422(
    api: httpx.AsyncClient, db: Sessions, world: World, body: dict[str, Any]
) -> None:
    oc = await listed_class(api, world.slots[0])
    await refused(
        api,
        db,
        "PUT",
        f"/v1/open-classes/{oc}/replay-price",
        422,
        "malformed_body",
        json=body,
        headers=CURRICULUM,
    )


async def test_refused_seats(api: httpx.AsyncClient, db: Sessions, world: World) -> None:
    oc = await listed_class(api, world.slots[0])
    s = world.student
    me = as_("parent_h5", s)
    url = f"/v1/open-classes/{oc}/seats"
    await grant(api, s, "credit", 1, "open")
    await refused(
        api,
        db,
        "POST",
        url,
        422,
        "payment_not_accepted",
        json={"student_id": s, "payment": {"asset": "stones"}},
        headers=me,
    )
    await refused(
        api,
        db,
        "POST",
        url,
        422,
        "malformed_body",
        json={"student_id": s, "payment": {"asset": "coupon"}},
        headers=me,
    )
    await refused(
        api,
        db,
        "POST",
        "/v1/open-classes/999999/seats",
        404,
        "open_class_not_found",
        json={"student_id": s},
        headers=me,
    )
    await refused(
        api,
        db,
        "POST",
        url,
        404,
        "student_not_found",
        json={"student_id": 10**12},
        headers=as_("classroom"),
    )
    r = await api.post(
        f"/v1/students/{s}/coupons",
        json={"course_type": "major", "expires_at": (T0 + 10 * DAY).isoformat()},
        headers=as_("marketing"),
    )
    coupon = r.json()["id"]
    await refused(
        api,
        db,
        "POST",
        url,
        422,
        "coupon_wrong_course_type",
        json={"student_id": s, "payment": {"asset": "coupon", "coupon_id": coupon}},
        headers=me,
    )
    await refused(
        api,
        db,
        "POST",
        url,
        409,
        "insufficient_balance",
        json={"student_id": world.other_student},
        headers=as_("classroom"),
    )


async def test_refused_replays(api: httpx.AsyncClient, db: Sessions, world: World) -> None:
    oc = await listed_class(api, world.slots[0])
    s = world.student
    me = as_("parent_pc", s)
    await refused(
        api,
        db,
        "POST",
        "/v1/open-classes/999999/replays",
        404,
        "open_class_not_found",
        json={"student_id": s},
        headers=me,
    )
    await refused(
        api,
        db,
        "POST",
        f"/v1/open-classes/{oc}/replays",
        409,
        "open_class_not_over",
        json={"student_id": s},
        headers=me,
    )
    await refused(
        api,
        db,
        "POST",
        f"/v1/open-classes/{oc}/replays",
        422,
        "malformed_body",
        json={"student_id": True},
        headers=me,
    )
    await refused(
        api, db, "GET", "/v1/students/999999/replays", 404, "student_not_found", headers=CC
    )


async def test_odd_requests_never_500(api: httpx.AsyncClient, db: Sessions, world: World) -> None:
    oc = await listed_class(api, world.slots[0])
    s = world.student
    requests: list[Odd] = []
    for n in (2**31, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63) - 1, -1, 0):
        requests += [
            ("GET", f"/v1/open-classes/{n}", {"headers": CC}),
            ("PATCH", f"/v1/open-classes/{n}", {"json": {"capacity": 3}, "headers": CURRICULUM}),
            ("POST", f"/v1/open-classes/{n}/list", {"headers": CURRICULUM}),
            ("POST", f"/v1/open-classes/{n}/delist", {"headers": CURRICULUM}),
            (
                "PUT",
                f"/v1/open-classes/{n}/replay-price",
                {"json": {"asset": "stones", "amount": 1}, "headers": CURRICULUM},
            ),
            (
                "POST",
                f"/v1/open-classes/{n}/seats",
                {"json": {"student_id": s}, "headers": as_("classroom")},
            ),
            (
                "POST",
                f"/v1/open-classes/{oc}/seats",
                {"json": {"student_id": n}, "headers": as_("classroom")},
            ),
            (
                "POST",
                f"/v1/open-classes/{oc}/replays",
                {"json": {"student_id": n}, "headers": as_("classroom")},
            ),
            ("GET", f"/v1/students/{n}/replays", {"headers": CC}),
            (
                "POST",
                "/v1/open-classes",
                {"json": {"timeslot_id": n, "title": "T", "capacity": 2}, "headers": CURRICULUM},
            ),
            (
                "POST",
                f"/v1/open-classes/{oc}/seats",
                {
                    "json": {"student_id": s, "payment": {"asset": "coupon", "coupon_id": n}},
                    "headers": as_("parent_h5", s),
                },
            ),
        ]
    window = {"headers": CC, "params": {"start_from": "9999-12-31T23:59:59-23:59"}}
    requests += [
        ("GET", "/v1/open-classes", window),
        ("GET", "/v1/open-classes", {"headers": CC, "params": {"limit": 0}}),
        ("GET", "/v1/open-classes", {"headers": CC, "params": {"listed": "maybe"}}),
        (
            "PATCH",
            f"/v1/open-classes/{oc}",
            {"json": {"description": "\x00"}, "headers": CURRICULUM},
        ),
        ("PATCH", f"/v1/open-classes/{oc}", {"content": b"[]", "headers": CURRICULUM}),
    ]
    no_problems(await odd(api, db, requests))
