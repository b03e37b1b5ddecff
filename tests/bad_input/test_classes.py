"""Bad input to booking and cancelling classes (POST /v1/classes, /v1/classes/batch,
/v1/classes/{id}/cancel, GET /v1/classes/{id}): each refusal is its own 4xx code and changes
nothing.

covers: PAR-1, PAR-3, H5-1, H5-3, H5-5, LP-2, LP-3, LP-8
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from store.db import Sessions
from tests.bad_input.checks import DAY, HOUR, JSON, World, refused
from tests.conftest import T0, Clock
from tests.helpers import CC, FIREMAN, LP, as_, assert_money_consistent, balances, book, grant

Good = dict[str, Any]
Request = Callable[[Good, int], dict[str, Any]]


def without(good: Good, key: str) -> Good:
    return {k: v for k, v in good.items() if k != key}


BAD_BOOKINGS: list[Any] = [
    pytest.param(
        lambda good, slot: {
            "content": b'{"student_id": 1, "timeslot_id": ',
            "headers": {**LP, **JSON},
        },
        id="cut-off JSON",
    ),
    pytest.param(
        lambda good, slot: {"content": b"not json at all", "headers": {**LP, **JSON}},
        id="not JSON",
    ),
    pytest.param(lambda good, slot: {"content": b"", "headers": {**LP, **JSON}}, id="empty"),
    pytest.param(lambda good, slot: {"json": None, "headers": LP}, id="null"),
    pytest.param(lambda good, slot: {"json": [good], "headers": LP}, id="a list"),
    pytest.param(lambda good, slot: {"json": "a string", "headers": LP}, id="a string"),
    pytest.param(lambda good, slot: {"json": {}, "headers": LP}, id="empty object"),
    pytest.param(
        lambda good, slot: {"json": without(good, "timeslot_id"), "headers": LP},
        id="no timeslot_id",
    ),
    pytest.param(
        lambda good, slot: {"json": without(good, "course_type"), "headers": LP},
        id="no course_type",
    ),
    pytest.param(
        lambda good, slot: {"json": {**good, "student_id": "abc"}, "headers": LP},
        id="student_id not a number",
    ),
    pytest.param(
        lambda good, slot: {"json": {**good, "timeslot_id": [slot]}, "headers": LP},
        id="timeslot_id a list",
    ),
    pytest.param(
        lambda good, slot: {"json": {**good, "timeslot_id": 1.5}, "headers": LP},
        id="timeslot_id a fraction",
    ),
    pytest.param(
        lambda good, slot: {"json": {**good, "course_type": "piano"}, "headers": LP},
        id="unknown course type",
    ),
    pytest.param(
        lambda good, slot: {"json": {**good, "payment": {"asset": "gold"}}, "headers": LP},
        id="unknown asset",
    ),
    pytest.param(
        lambda good, slot: {"json": {**good, "payment": {"asset": "coupon"}}, "headers": LP},
        id="coupon without its id",
    ),
    pytest.param(
        lambda good, slot: {
            "json": {**good, "payment": {"asset": "credit", "coupon_id": 1}},
            "headers": LP,
        },
        id="coupon id on a credit payment",
    ),
    pytest.param(
        lambda good, slot: {"json": {**good, "payment": "credit"}, "headers": LP},
        id="payment a string",
    ),
    pytest.param(
        lambda good, slot: {"json": {**good, "lesson": "x" * 201}, "headers": LP},
        id="lesson over 200 characters",
    ),
]


@pytest.mark.parametrize("request_for", BAD_BOOKINGS)
async def test_malformed_booking_is_422_malformed_body(
    api: httpx.AsyncClient, db: Sessions, world: World, request_for: Request
) -> None:
    """Each problem is named with where it is and what is wrong."""
    slot = world.slots[0]
    good = {"student_id": world.student, "timeslot_id": slot, "course_type": "major"}
    body = await refused(
        api, db, "POST", "/v1/classes", 422, "malformed_body", **request_for(good, slot)
    )
    errors = body["details"]["errors"]
    assert errors and all({"at", "problem"} <= set(e) for e in errors), body


@pytest.mark.parametrize(
    ("url", "body"),
    [
        pytest.param("/v1/classes/batch", {"timeslot_ids": []}, id="batch of none"),
        pytest.param("/v1/classes/batch", {"timeslot_ids": list(range(1, 52))}, id="batch of 51"),
        pytest.param("/v1/classes/batch", {"timeslot_ids": None}, id="batch of null"),
        pytest.param("/v1/classes/1/cancel", {"reason": "x" * 501}, id="reason over 500"),
    ],
)
async def test_malformed_batch_and_cancel_are_422(
    api: httpx.AsyncClient, db: Sessions, world: World, url: str, body: dict[str, Any]
) -> None:
    """covers: LP-8, LP-3"""
    if url.endswith("batch"):
        body = {"student_id": world.student, "course_type": "major", **body}
    await refused(api, db, "POST", url, 422, "malformed_body", json=body, headers=LP)


async def test_malformed_class_id_in_the_path_is_422(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    await refused(api, db, "GET", "/v1/classes/abc", 422, "malformed_body", headers=FIREMAN)


async def test_an_idempotency_key_over_200_characters_is_422(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    """The server stores 200 characters of a key: a longer one is refused, not truncated."""
    await refused(
        api,
        db,
        "POST",
        "/v1/classes",
        422,
        "malformed_body",
        json={"student_id": world.student, "timeslot_id": world.slots[0], "course_type": "major"},
        headers={**LP, "Idempotency-Key": "k" * 201},
    )


Case = Callable[[World], tuple[str, str, str, dict[str, Any]]]


def booking(w: World, **changes: Any) -> dict[str, Any]:
    return {"student_id": w.student, "timeslot_id": w.slots[0], "course_type": "major", **changes}


UNKNOWN: list[Any] = [
    pytest.param(lambda w: ("GET", "/v1/classes/999", "class_not_found", {"headers": LP})),
    pytest.param(lambda w: ("GET", "/v1/classes/0", "class_not_found", {"headers": LP})),
    pytest.param(
        lambda w: ("GET", "/v1/classes/999/audit", "class_not_found", {"headers": FIREMAN})
    ),
    pytest.param(
        lambda w: (
            "POST",
            "/v1/classes/999/cancel",
            "class_not_found",
            {"json": {}, "headers": LP},
        )
    ),
    pytest.param(
        lambda w: (
            "POST",
            "/v1/classes",
            "student_not_found",
            {"json": booking(w, student_id=999), "headers": LP},
        )
    ),
    pytest.param(
        lambda w: (
            "POST",
            "/v1/classes",
            "timeslot_not_found",
            {"json": booking(w, timeslot_id=999), "headers": LP},
        )
    ),
    pytest.param(
        lambda w: (
            "POST",
            "/v1/classes",
            "timeslot_not_found",
            {"json": booking(w, timeslot_id=-5), "headers": LP},
        )
    ),
    pytest.param(
        lambda w: (
            "POST",
            "/v1/classes/batch",
            "timeslot_not_found",
            {
                "json": {
                    "student_id": w.student,
                    "timeslot_ids": [w.slots[0], 999],
                    "course_type": "major",
                },
                "headers": LP,
            },
        )
    ),
    pytest.param(
        lambda w: (
            "POST",
            "/v1/classes",
            "coupon_not_found",
            {
                "json": booking(w, payment={"asset": "coupon", "coupon_id": 999}),
                "headers": LP,
            },
        )
    ),
]


@pytest.mark.parametrize("case", UNKNOWN)
async def test_unknown_ids_are_404_with_their_entity(
    api: httpx.AsyncClient, db: Sessions, world: World, case: Case
) -> None:
    method, url, code, kwargs = case(world)
    body = await refused(api, db, method, url, 404, code, **kwargs)
    assert body["details"]["entity"] == code.removesuffix("_not_found"), body


async def test_another_students_coupon_does_not_exist_for_this_one(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    """covers: PAR-1"""
    s = world.student
    r = await api.post(
        f"/v1/students/{world.other_student}/coupons",
        json={"course_type": "major", "expires_at": (T0 + 10 * DAY).isoformat()},
        headers=CC,
    )
    assert r.status_code == 201, r.text
    theirs = r.json()["id"]
    body = await refused(
        api,
        db,
        "POST",
        "/v1/classes",
        404,
        "coupon_not_found",
        json=booking(world, payment={"asset": "coupon", "coupon_id": theirs}),
        headers=as_("parent_h5", s),
    )
    assert body["details"] == {"entity": "coupon", "id": theirs}


async def test_booked_slot_is_already_booked(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    """covers: PAR-1, H5-1, LP-2, LP-8"""
    t, s, other, slot = world.teacher, world.student, world.other_student, world.slots[0]
    assert (await book(api, s, slot)).status_code == 201
    taken = {"student_id": other, "timeslot_id": slot, "course_type": "major"}
    for channel, actor in (("parent_h5", other), ("parent_pc", other), ("lp", "staff-1")):
        body = await refused(
            api,
            db,
            "POST",
            "/v1/classes",
            409,
            "slot_already_booked",
            json=taken,
            headers=as_(channel, actor),
        )
        assert body["details"] == {"timeslot_id": slot}
    # The student themself, again.
    await refused(
        api,
        db,
        "POST",
        "/v1/classes",
        409,
        "slot_already_booked",
        json={**taken, "student_id": s},
        headers=as_("parent_h5", s),
    )
    # A booked slot cannot be closed, not even along with an open one.
    for ids in ([slot], [world.slots[1], slot]):
        await refused(
            api,
            db,
            "POST",
            f"/v1/teachers/{t}/timeslots/close",
            409,
            "slot_already_booked",
            json={"timeslot_ids": ids},
            headers=FIREMAN,
        )
    # A batch with the booked slot last books none of the others.
    await refused(
        api,
        db,
        "POST",
        "/v1/classes/batch",
        409,
        "slot_already_booked",
        json={
            "student_id": other,
            "timeslot_ids": [*world.slots[1:4], slot],
            "course_type": "major",
        },
        headers=LP,
    )
    # A batch naming the same slot twice.
    await refused(
        api,
        db,
        "POST",
        "/v1/classes/batch",
        409,
        "slot_already_booked",
        json={"student_id": other, "timeslot_ids": [world.slots[4]] * 2, "course_type": "major"},
        headers=LP,
    )


async def test_student_busy_changes_nothing(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    """covers: PAR-1, H5-1"""
    s = world.student
    assert (await book(api, s, world.slots[0])).status_code == 201
    body = await refused(
        api,
        db,
        "POST",
        "/v1/classes",
        409,
        "student_busy",
        json={"student_id": s, "timeslot_id": world.foreign_slot, "course_type": "major"},
        headers=as_("parent_h5", s),
    )
    assert body["details"]["student_id"] == s
    assert (await balances(api, s))["credits"] == {"major": 4}
    await assert_money_consistent(db)


async def test_course_type_not_taught(api: httpx.AsyncClient, db: Sessions, world: World) -> None:
    """covers: PAR-1, H5-3"""
    s = world.student
    await grant(api, s, "credit", 1, "special")
    r = await api.post(
        f"/v1/students/{s}/courses", json={"course_type": "special"}, headers=as_("lp")
    )
    assert r.status_code == 201, r.text  # H5-6: the special course has started
    body = await refused(
        api,
        db,
        "POST",
        "/v1/classes",
        422,
        "course_type_not_taught",
        json=booking(world, course_type="special"),
        headers=as_("parent_h5", s),
    )
    assert body["details"]["course_type"] == "special"
    # The other teacher does teach it.
    r = await book(api, s, world.foreign_slot, course_type="special")
    assert r.status_code == 201, r.text


async def test_booking_a_slot_that_started_is_in_the_past(
    api: httpx.AsyncClient, db: Sessions, clock: Clock, world: World
) -> None:
    """covers: PAR-1, H5-1"""
    s = world.student
    clock.advance(3 * DAY)
    await refused(
        api,
        db,
        "POST",
        "/v1/classes",
        422,
        "in_past",
        json=booking(world),
        headers=as_("parent_h5", s),
    )


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(T0 + HOUR, id="59 minutes ahead"),
        pytest.param(T0 + 4 * 7 * DAY + timedelta(minutes=30), id="4 weeks and 29 minutes ahead"),
    ],
)
async def test_booking_outside_the_window(
    api: httpx.AsyncClient, db: Sessions, clock: Clock, world: World, start: datetime
) -> None:
    """covers: PAR-1, H5-1, LP-2. Students book from 1 h to 4 weeks ahead."""
    s = world.student
    r = await api.post(
        f"/v1/teachers/{world.teacher}/timeslots",
        json={"start_at": [start.isoformat()]},
        headers=as_("teacher", world.teacher),
    )
    assert r.status_code == 201, r.text
    slot = r.json()["opened"][0]["id"]
    clock.advance(timedelta(minutes=1))
    await refused(
        api,
        db,
        "POST",
        "/v1/classes",
        422,
        "outside_booking_window",
        json=booking(world, timeslot_id=slot),
        headers=as_("parent_h5", s),
    )
