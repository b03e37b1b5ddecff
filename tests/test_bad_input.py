"""Bad input: every refusal is a specific 4xx JSON error {"code", "message", "details"}, never a
500, and changes nothing in the database (ARCHITECTURE rule 7).

covers: TCH-1, TCH-2, FM-6, PAR-1, PAR-3, H5-1, H5-3, H5-5, LP-2, LP-3, LP-8
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from store.db import Sessions
from tests.conftest import T0, Clock
from tests.helpers import (
    CC,
    FIREMAN,
    LP,
    as_,
    assert_money_consistent,
    balances,
    book,
    client_showing_500s,
    grant,
    open_slots,
    snapshot,
    student,
    teacher,
)
from yueke.settings import Settings

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def api(settings: Settings, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    async with client_showing_500s(settings, clock) as client:
        yield client


@dataclass
class World:
    teacher: int
    other_teacher: int
    student: int
    other_student: int
    slots: list[int]  # the teacher's open slots at T0 + 2 days + i hours
    foreign_slot: int  # the other teacher's open slot at T0 + 2 days


@pytest.fixture
async def world(api: httpx.AsyncClient) -> World:
    t = await teacher(api)
    other_t = await teacher(api, course_types=("major", "special"))
    s = await student(api, credits={"major": 5})
    other_s = await student(api, credits={"major": 5})
    slots = await open_slots(api, t, *(T0 + 2 * DAY + i * HOUR for i in range(6)))
    [foreign] = await open_slots(api, other_t, T0 + 2 * DAY)
    return World(t, other_t, s, other_s, slots, foreign)


def assert_error_shape(r: httpx.Response) -> dict[str, Any]:
    assert r.headers["content-type"].startswith("application/json"), r.text
    body = r.json()
    assert isinstance(body, dict) and set(body) == {"code", "message", "details"}, body
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)
    return body


async def refused(
    api: httpx.AsyncClient,
    db: Sessions,
    method: str,
    url: str,
    status: int,
    code: str,
    **kwargs: Any,
) -> dict[str, Any]:
    """The request gets exactly this status and code, as a JSON error, and changes nothing."""
    before = await snapshot(db)
    r = await api.request(method, url, **kwargs)
    assert (r.status_code, r.json().get("code") if r.status_code < 500 else r.text) == (
        status,
        code,
    ), f"{method} {url}: {r.status_code} {r.text}"
    body = assert_error_shape(r)
    assert await snapshot(db) == before, f"{method} {url} changed the database"
    return body


Odd = tuple[str, str, dict[str, Any]]


async def odd(api: httpx.AsyncClient, db: Sessions, requests: list[Odd]) -> list[str]:
    """What went wrong with the answers to odd requests: each must be below 500 and, if it is
    refused, a JSON error that changed nothing."""
    problems = []
    for method, url, kwargs in requests:
        before = await snapshot(db)
        r = await api.request(method, url, **kwargs)
        sent = {k: str(v)[:90] for k, v in kwargs.items() if k != "headers"}
        actor = str(kwargs.get("headers", {}).get("X-Actor-Id", ""))[:20]
        what = f"{method} {url} {sent} actor={actor!r}: {r.status_code}"
        if r.status_code >= 500:
            problems.append(f"{what} {r.text[:60]}")
        elif r.status_code >= 400:
            try:
                assert_error_shape(r)
            except (AssertionError, ValueError):
                problems.append(f"{what} is not a JSON error: {r.text[:100]}")
            if await snapshot(db) != before:
                problems.append(f"{what} refused, but changed the database")
    return problems


def no_problems(problems: list[str]) -> None:
    assert not problems, f"{len(problems)} odd requests went wrong:\n" + "\n".join(problems)


# --- malformed bodies and parameters: 422 malformed_body ---------------------------------------


async def test_malformed_bodies_are_422_malformed_body(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    s, slot = world.student, world.slots[0]
    good = {"student_id": s, "timeslot_id": slot, "course_type": "major"}
    bad_bookings: list[dict[str, Any]] = [
        {"content": b'{"student_id": 1, "timeslot_id": ', "headers": {**LP, **JSON}},
        {"content": b"not json at all", "headers": {**LP, **JSON}},
        {"content": b"", "headers": {**LP, **JSON}},
        {"json": None, "headers": LP},
        {"json": [good], "headers": LP},
        {"json": "a string", "headers": LP},
        {"json": {}, "headers": LP},
        {"json": {k: v for k, v in good.items() if k != "timeslot_id"}, "headers": LP},
        {"json": {k: v for k, v in good.items() if k != "course_type"}, "headers": LP},
        {"json": {**good, "student_id": "abc"}, "headers": LP},
        {"json": {**good, "timeslot_id": [slot]}, "headers": LP},
        {"json": {**good, "timeslot_id": 1.5}, "headers": LP},
        {"json": {**good, "course_type": "piano"}, "headers": LP},
        {"json": {**good, "payment": {"asset": "gold"}}, "headers": LP},
        {"json": {**good, "payment": {"asset": "coupon"}}, "headers": LP},
        {"json": {**good, "payment": {"asset": "credit", "coupon_id": 1}}, "headers": LP},
        {"json": {**good, "payment": "credit"}, "headers": LP},
        {"json": {**good, "lesson": "x" * 201}, "headers": LP},
    ]
    for kwargs in bad_bookings:
        body = await refused(api, db, "POST", "/v1/classes", 422, "malformed_body", **kwargs)
        errors = body["details"]["errors"]
        assert errors and all({"at", "problem"} <= set(e) for e in errors), body

    t = world.teacher
    as_t = as_("teacher", t)
    opening = f"/v1/teachers/{t}/timeslots"
    naive = (T0 + 3 * DAY).replace(tzinfo=None).isoformat()
    assert "+" not in naive and not naive.endswith("Z")
    for start_at in (
        [naive],
        [(T0 + 3 * DAY).isoformat(), naive],
        ["2030-01-10 kind of noon"],
        ["2030-02-30T10:00:00+00:00"],
        [],
        [(T0 + DAY + i * timedelta(minutes=30)).isoformat() for i in range(337)],
        (T0 + 3 * DAY).isoformat(),
    ):
        await refused(
            api,
            db,
            "POST",
            opening,
            422,
            "malformed_body",
            json={"start_at": start_at},
            headers=as_t,
        )
    body = await refused(
        api, db, "POST", opening, 422, "malformed_body", json={"start_at": [naive]}, headers=as_t
    )
    assert body["details"]["errors"][0]["at"].startswith("body.start_at")

    closing = f"/v1/teachers/{t}/timeslots/close"
    for ids in ([], ["one"], None, [world.slots[0]] * 337):
        await refused(
            api,
            db,
            "POST",
            closing,
            422,
            "malformed_body",
            json={"timeslot_ids": ids},
            headers=as_t,
        )

    grants = f"/v1/students/{s}/grants"
    for grant_body in (
        {"asset": "credit", "amount": 0, "course_type": "major"},
        {"asset": "credit", "amount": -1, "course_type": "major"},
        {"asset": "credit", "amount": 100_001, "course_type": "major"},
        {"asset": "credit", "amount": "many", "course_type": "major"},
        {"asset": "gold", "amount": 1},
        {"asset": "credit", "amount": 1, "course_type": "piano"},
        {"amount": 1, "course_type": "major"},
    ):
        await refused(api, db, "POST", grants, 422, "malformed_body", json=grant_body, headers=CC)
    coupons = f"/v1/students/{s}/coupons"
    for coupon_body in (
        {"course_type": "major", "expires_at": naive},
        {"course_type": "major"},
        {"course_type": "piano", "expires_at": (T0 + DAY).isoformat()},
    ):
        await refused(api, db, "POST", coupons, 422, "malformed_body", json=coupon_body, headers=CC)

    for teacher_body in (
        {"name": "T", "kind": "alien", "course_types": ["major"]},
        {"name": "T", "kind": "foreign", "course_types": []},
        {"name": "", "kind": "foreign", "course_types": ["major"]},
        {"name": "T", "kind": "foreign", "course_types": ["piano"]},
        {"kind": "foreign", "course_types": ["major"]},
    ):
        await refused(
            api,
            db,
            "POST",
            "/v1/teachers",
            422,
            "malformed_body",
            json=teacher_body,
            headers=FIREMAN,
        )
    for student_body in ({"name": "S", "level": 21}, {"name": "S", "level": -1}, {"level": 1}):
        await refused(
            api, db, "POST", "/v1/students", 422, "malformed_body", json=student_body, headers=CC
        )

    batch = {"student_id": s, "course_type": "major"}
    for ids in ([], list(range(1, 52)), None):
        await refused(
            api,
            db,
            "POST",
            "/v1/classes/batch",
            422,
            "malformed_body",
            json={**batch, "timeslot_ids": ids},
            headers=LP,
        )
    await refused(
        api,
        db,
        "POST",
        "/v1/classes/1/cancel",
        422,
        "malformed_body",
        json={"reason": "x" * 501},
        headers=LP,
    )


async def test_malformed_path_query_and_headers_are_422(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    window = {"start_from": T0.isoformat(), "start_to": (T0 + 9 * DAY).isoformat()}
    naive = T0.replace(tzinfo=None).isoformat()
    for params in (
        {**window, "start_from": naive},
        {**window, "start_to": naive},
        {"start_from": T0.isoformat()},
        {**window, "limit": 0},
        {**window, "limit": 1001},
        {**window, "teacher_id": "me"},
        {**window, "course_type": "piano"},
    ):
        await refused(
            api, db, "GET", "/v1/timeslots", 422, "malformed_body", params=params, headers=LP
        )
    for url in ("/v1/classes/abc", "/v1/teachers/1.5", "/v1/students/x/balances"):
        await refused(api, db, "GET", url, 422, "malformed_body", headers=FIREMAN)
    for params in ({"limit": 0}, {"before_id": "last"}):
        await refused(
            api,
            db,
            "GET",
            f"/v1/students/{world.student}/ledger",
            422,
            "malformed_body",
            params=params,
            headers=CC,
        )
    # An Idempotency-Key longer than the 200 characters the server stores.
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


# --- unknown ids: 404 <entity>_not_found -------------------------------------------------------


async def test_unknown_ids_are_404_with_their_entity(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    s, t, slot = world.student, world.teacher, world.slots[0]
    cases: list[tuple[str, str, str, dict[str, Any]]] = [
        ("GET", "/v1/teachers/999", "teacher_not_found", {"headers": LP}),
        ("GET", "/v1/teachers/-1", "teacher_not_found", {"headers": LP}),
        (
            "POST",
            "/v1/teachers/999/timeslots",
            "teacher_not_found",
            {"json": {"start_at": [(T0 + DAY).isoformat()]}, "headers": FIREMAN},
        ),
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
        (
            "POST",
            "/v1/classes",
            "student_not_found",
            {
                "json": {"student_id": 999, "timeslot_id": slot, "course_type": "major"},
                "headers": LP,
            },
        ),
        (
            "POST",
            "/v1/classes",
            "timeslot_not_found",
            {"json": {"student_id": s, "timeslot_id": 999, "course_type": "major"}, "headers": LP},
        ),
        (
            "POST",
            "/v1/classes",
            "timeslot_not_found",
            {"json": {"student_id": s, "timeslot_id": -5, "course_type": "major"}, "headers": LP},
        ),
        (
            "POST",
            "/v1/classes/batch",
            "timeslot_not_found",
            {
                "json": {"student_id": s, "timeslot_ids": [slot, 999], "course_type": "major"},
                "headers": LP,
            },
        ),
        (
            "POST",
            f"/v1/teachers/{t}/timeslots/close",
            "timeslot_not_found",
            {"json": {"timeslot_ids": [world.slots[1], 999]}, "headers": as_("teacher", t)},
        ),
        # Another teacher's slot is not theirs to close: it does not exist for them.
        (
            "POST",
            f"/v1/teachers/{t}/timeslots/close",
            "timeslot_not_found",
            {"json": {"timeslot_ids": [world.foreign_slot]}, "headers": as_("teacher", t)},
        ),
        ("GET", "/v1/timeslots/999/audit", "timeslot_not_found", {"headers": FIREMAN}),
        ("GET", "/v1/classes/999", "class_not_found", {"headers": LP}),
        ("GET", "/v1/classes/0", "class_not_found", {"headers": LP}),
        ("GET", "/v1/classes/999/audit", "class_not_found", {"headers": FIREMAN}),
        ("POST", "/v1/classes/999/cancel", "class_not_found", {"json": {}, "headers": LP}),
        (
            "POST",
            "/v1/classes",
            "coupon_not_found",
            {
                "json": {
                    "student_id": s,
                    "timeslot_id": slot,
                    "course_type": "major",
                    "payment": {"asset": "coupon", "coupon_id": 999},
                },
                "headers": LP,
            },
        ),
    ]
    for method, url, code, kwargs in cases:
        body = await refused(api, db, method, url, 404, code, **kwargs)
        assert body["details"]["entity"] == code.removesuffix("_not_found"), body

    # Another student's coupon cannot be used: for this student it does not exist.
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
        json={
            "student_id": s,
            "timeslot_id": slot,
            "course_type": "major",
            "payment": {"asset": "coupon", "coupon_id": theirs},
        },
        headers=as_("parent_h5", s),
    )
    assert body["details"] == {"entity": "coupon", "id": theirs}


# --- the state of slots, classes and money: 409 ------------------------------------------------


async def test_closed_slot_is_not_open(api: httpx.AsyncClient, db: Sessions, world: World) -> None:
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


async def test_booked_slot_is_already_booked(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    t, s, other, slot = world.teacher, world.student, world.other_student, world.slots[0]
    assert (await book(api, s, slot)).status_code == 201
    booking = {"student_id": other, "timeslot_id": slot, "course_type": "major"}
    for channel, actor in (("parent_h5", other), ("parent_pc", other), ("lp", "staff-1")):
        body = await refused(
            api,
            db,
            "POST",
            "/v1/classes",
            409,
            "slot_already_booked",
            json=booking,
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
        json={**booking, "student_id": s},
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


async def test_insufficient_balance_changes_nothing(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
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


async def test_course_type_not_taught(api: httpx.AsyncClient, db: Sessions, world: World) -> None:
    s = world.student
    await grant(api, s, "credit", 1, "special")
    body = await refused(
        api,
        db,
        "POST",
        "/v1/classes",
        422,
        "course_type_not_taught",
        json={"student_id": s, "timeslot_id": world.slots[0], "course_type": "special"},
        headers=as_("parent_h5", s),
    )
    assert body["details"]["course_type"] == "special"
    # The other teacher does teach it.
    r = await book(api, s, world.foreign_slot, course_type="special")
    assert r.status_code == 201, r.text


async def test_coupons_expired_used_and_for_another_course_type(
    api: httpx.AsyncClient, db: Sessions, clock: Clock, world: World
) -> None:
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


async def test_grants_refused_with_specific_codes(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    """Credits need a course type; coupons have their own route. Each refusal names its own
    code, not the generic base-class one."""
    url = f"/v1/students/{world.student}/grants"
    for grant_body in (
        {"asset": "credit", "amount": 1},
        {"asset": "coupon", "amount": 1, "course_type": "major"},
    ):
        before = await snapshot(db)
        r = await api.post(url, json=grant_body, headers=CC)
        assert r.status_code == 422, r.text
        body = assert_error_shape(r)
        assert body["code"] not in ("domain_error", ""), body
        assert await snapshot(db) == before


# --- time rules: off_grid, in_past, outside_booking_window -------------------------------------


async def test_off_grid_starts_are_refused_and_open_nothing(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    t = world.teacher
    url = f"/v1/teachers/{t}/timeslots"
    day = T0 + 3 * DAY
    on_grid = (day + 10 * HOUR).isoformat()
    for start in (
        "2030-01-10T10:15:00+00:00",
        "2030-01-10T10:00:01+00:00",
        "2030-01-10T10:00:00.000001+00:00",
        "2030-01-10T10:29:59Z",
        "2030-01-10T10:00:00+05:45",  # 04:15 UTC
        "2030-01-10T10:00:00+00:01",
    ):
        body = await refused(
            api,
            db,
            "POST",
            url,
            422,
            "off_grid",
            json={"start_at": [on_grid, start]},
            headers=as_("teacher", t),
        )
        assert body["details"]["grid_minutes"] == 30
    # On the grid in another zone is fine: 18:30+08:00 is 10:30 UTC.
    r = await api.post(
        url, json={"start_at": ["2030-01-10T18:30:00+08:00"]}, headers=as_("teacher", t)
    )
    assert r.status_code == 201, r.text
    assert r.json()["opened"][0]["start_at"].startswith("2030-01-10T10:30:00")


async def test_in_past(api: httpx.AsyncClient, db: Sessions, clock: Clock, world: World) -> None:
    t, s = world.teacher, world.student
    url = f"/v1/teachers/{t}/timeslots"
    for start in (T0 - timedelta(minutes=30), T0, T0 - 400 * DAY):
        await refused(
            api,
            db,
            "POST",
            url,
            422,
            "in_past",
            json={"start_at": [(T0 + DAY).isoformat(), start.isoformat()]},
            headers=FIREMAN,
        )
    clock.advance(3 * DAY)
    await refused(
        api,
        db,
        "POST",
        "/v1/classes",
        422,
        "in_past",
        json={"student_id": s, "timeslot_id": world.slots[0], "course_type": "major"},
        headers=as_("parent_h5", s),
    )


async def test_outside_the_windows(
    api: httpx.AsyncClient, db: Sessions, clock: Clock, world: World
) -> None:
    t, s = world.teacher, world.student
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
    assert r.status_code == 201, r.text  # exactly 8 weeks ahead is allowed

    soon, far = await open_slots(api, t, T0 + HOUR, T0 + 4 * 7 * DAY + timedelta(minutes=30))
    booking = {"student_id": s, "course_type": "major"}
    clock.advance(timedelta(minutes=1))  # 59 minutes before the start
    for slot in (soon, far):
        await refused(
            api,
            db,
            "POST",
            "/v1/classes",
            422,
            "outside_booking_window",
            json={**booking, "timeslot_id": slot},
            headers=as_("parent_h5", s),
        )


# --- who calls: 401 and 403 --------------------------------------------------------------------


async def test_unauthenticated_is_401(api: httpx.AsyncClient, db: Sessions, world: World) -> None:
    s = world.student
    booking = {"student_id": s, "timeslot_id": world.slots[0], "course_type": "major"}
    for headers in (
        {},
        {"X-Actor-Id": str(s)},
        {"Authorization": "Bearer nope", "X-Actor-Id": str(s)},
        {"Authorization": "Bearer ", "X-Actor-Id": str(s)},
        {"Authorization": "Bearer", "X-Actor-Id": str(s)},
        {"Authorization": "Basic dev-parent_h5", "X-Actor-Id": str(s)},
        {"Authorization": "dev-parent_h5", "X-Actor-Id": str(s)},
        {"Authorization": "Bearer dev-parent_h5"},
        {"Authorization": "Bearer dev-parent_h5", "X-Actor-Id": ""},
        {"Authorization": "Bearer DEV-PARENT_H5", "X-Actor-Id": str(s)},
    ):
        await refused(
            api, db, "POST", "/v1/classes", 401, "unauthenticated", json=booking, headers=headers
        )
        # Unauthenticated comes before looking at the body.
        await refused(
            api, db, "POST", "/v1/classes", 401, "unauthenticated", json={}, headers=headers
        )
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


async def test_unknown_route_and_method_are_json(api: httpx.AsyncClient, db: Sessions) -> None:
    for method, url in (("GET", "/v1/nope"), ("GET", "/nope"), ("POST", "/v2/classes")):
        await refused(api, db, method, url, 404, "no_such_route", headers=LP)
    await refused(api, db, "DELETE", "/v1/classes/1", 405, "method_not_allowed", headers=LP)
    await refused(api, db, "PUT", "/v1/classes", 405, "method_not_allowed", json={}, headers=LP)


# --- fuzz: odd bodies never get a 500 ----------------------------------------------------------


async def test_ids_beyond_64_bits_never_500(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    """Ids are BIGINT: one that does not fit is simply not found (or malformed), never a 500."""
    s, t, slot = world.student, world.teacher, world.slots[0]
    day = (T0 + DAY).isoformat()
    requests: list[Odd] = []
    for n in (2**31, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63) - 1, -1, 0):
        book: dict[str, Any] = {"student_id": s, "timeslot_id": slot, "course_type": "major"}
        coupon = {"asset": "coupon", "coupon_id": n}
        window = {"start_from": T0.isoformat(), "start_to": day}
        requests += [
            ("GET", f"/v1/classes/{n}", {"headers": LP}),
            ("GET", f"/v1/teachers/{n}", {"headers": LP}),
            ("GET", f"/v1/students/{n}/balances", {"headers": CC}),
            ("GET", f"/v1/students/{s}/ledger", {"params": {"before_id": n}, "headers": CC}),
            ("GET", "/v1/timeslots", {"params": {**window, "teacher_id": n}, "headers": LP}),
            ("GET", "/v1/timeslots", {"params": {**window, "student_id": n}, "headers": LP}),
            ("POST", f"/v1/classes/{n}/cancel", {"json": {}, "headers": LP}),
            ("POST", "/v1/classes", {"json": {**book, "student_id": n}, "headers": LP}),
            ("POST", "/v1/classes", {"json": {**book, "timeslot_id": n}, "headers": LP}),
            ("POST", "/v1/classes", {"json": {**book, "payment": coupon}, "headers": LP}),
            (
                "POST",
                "/v1/classes/batch",
                {"json": {**book, "timeslot_ids": [slot, n]}, "headers": LP},
            ),
            (
                "POST",
                f"/v1/teachers/{t}/timeslots/close",
                {"json": {"timeslot_ids": [n]}, "headers": FIREMAN},
            ),
            (
                "POST",
                f"/v1/teachers/{n}/timeslots",
                {"json": {"start_at": [day]}, "headers": FIREMAN},
            ),
            (
                "POST",
                "/v1/students",
                {"json": {"name": "S", "exclusive_teacher_id": n}, "headers": CC},
            ),
            (
                "POST",
                f"/v1/students/{n}/grants",
                {"json": {"asset": "stones", "amount": 1}, "headers": CC},
            ),
        ]
    no_problems(await odd(api, db, requests))


async def test_nul_characters_never_500(api: httpx.AsyncClient, db: Sessions, world: World) -> None:
    """PostgreSQL text cannot hold U+0000: such strings are refused as input, never a 500."""
    s = world.student
    booked = await book(api, s, world.slots[2])
    assert booked.status_code == 201, booked.text
    teacher_body = {"name": "T\x00", "kind": "foreign", "course_types": ["major"]}
    booking = {"student_id": s, "timeslot_id": world.slots[1], "course_type": "major"}
    requests: list[Odd] = [
        ("POST", "/v1/classes", {"json": {**booking, "lesson": "a\x00b"}, "headers": LP}),
        (
            "POST",
            f"/v1/classes/{booked.json()['id']}/cancel",
            {"json": {"reason": "ill\x00"}, "headers": LP},
        ),
        ("POST", "/v1/teachers", {"json": teacher_body, "headers": FIREMAN}),
        ("POST", "/v1/students", {"json": {"name": "S", "time_zone": "\x00"}, "headers": CC}),
        ("POST", "/v1/students", {"json": {"name": "\x00"}, "headers": CC}),
    ]
    no_problems(await odd(api, db, requests))


async def test_datetimes_at_the_edges_of_the_calendar_never_500(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    """Valid ISO 8601 with an offset whose UTC instant falls outside years 1-9999."""
    s, t = world.student, world.teacher
    early, late = "0001-01-01T00:00:00+14:00", "9999-12-31T23:30:00-14:00"
    opening = f"/v1/teachers/{t}/timeslots"
    requests: list[Odd] = [
        ("POST", opening, {"json": {"start_at": [early]}, "headers": FIREMAN}),
        ("POST", opening, {"json": {"start_at": [late]}, "headers": FIREMAN}),
        (
            "POST",
            f"/v1/students/{s}/coupons",
            {"json": {"course_type": "major", "expires_at": late}, "headers": CC},
        ),
        (
            "POST",
            f"/v1/students/{s}/coupons",
            {"json": {"course_type": "major", "expires_at": early}, "headers": CC},
        ),
        (
            "GET",
            "/v1/timeslots",
            {"params": {"start_from": early, "start_to": late}, "headers": LP},
        ),
        ("GET", f"/v1/students/{s}/classes", {"params": {"start_from": early}, "headers": CC}),
    ]
    no_problems(await odd(api, db, requests))


async def test_long_actor_ids_never_500(api: httpx.AsyncClient, db: Sessions, world: World) -> None:
    """The acting user is stored with every change (64 characters): a longer X-Actor-Id is
    refused up front, never a 500 halfway through a booking."""
    s, t = world.student, world.teacher
    booking = {"student_id": s, "course_type": "major"}
    requests: list[Odd] = [
        (
            "POST",
            "/v1/classes",
            {"json": {**booking, "timeslot_id": world.slots[3]}, "headers": as_("lp", "a" * 65)},
        ),
        (
            "POST",
            "/v1/classes",
            {"json": {**booking, "timeslot_id": world.slots[4]}, "headers": as_("lp", "x" * 5000)},
        ),
        (
            "POST",
            f"/v1/teachers/{t}/timeslots",
            {
                "json": {"start_at": [(T0 + 3 * DAY).isoformat()]},
                "headers": {**FIREMAN, "X-Actor-Id": ("\u00e9" * 40).encode()},
            },
        ),
    ]
    no_problems(await odd(api, db, requests))


async def test_odd_bodies_never_500(api: httpx.AsyncClient, db: Sessions, world: World) -> None:
    s, t, slot = world.student, world.teacher, world.slots[0]
    later = (T0 + 3 * DAY).isoformat()
    opening = f"/v1/teachers/{t}/timeslots"
    booking = {"student_id": s, "timeslot_id": slot, "course_type": "major"}
    coupon_none = {"asset": "coupon", "coupon_id": None}
    requests: list[Odd] = [
        ("POST", "/v1/students", {"json": {"name": "S" * 100_000}, "headers": CC}),
        ("POST", "/v1/students", {"content": b'{"name": 1e400}', "headers": {**CC, **JSON}}),
        (
            "POST",
            "/v1/students",
            {"content": b'{"name": NaN, "level": Infinity}', "headers": {**CC, **JSON}},
        ),
        ("POST", "/v1/students", {"content": b"[" * 5000 + b"]" * 5000, "headers": {**CC, **JSON}}),
        (
            "POST",
            "/v1/students",
            {"content": b'{"name": "S"}', "headers": {**CC, "Content-Type": "text/plain"}},
        ),
        ("POST", "/v1/students", {"content": b"\xff\xfe\x00", "headers": {**CC, **JSON}}),
        ("POST", "/v1/classes", {"json": {**booking, "payment": coupon_none}, "headers": LP}),
        ("POST", "/v1/classes", {"json": {**booking, "student_id": 2.0}, "headers": LP}),
        ("POST", "/v1/classes", {"json": {**booking, "extra": {"a": [1]}}, "headers": LP}),
        (
            "POST",
            f"/v1/students/{s}/grants",
            {"json": {"asset": "stones", "amount": 10**30}, "headers": CC},
        ),
        ("POST", opening, {"json": {"start_at": [later] * 337}, "headers": FIREMAN}),
        (
            "POST",
            f"/v1/teachers/{t}/timeslots/close",
            {"json": {"timeslot_ids": list(range(-336, 0))}, "headers": FIREMAN},
        ),
        (
            "POST",
            "/v1/classes/batch",
            {"json": {**booking, "timeslot_ids": [-1] * 50}, "headers": LP},
        ),
        ("POST", "/v1/classes", {"json": booking, "headers": {**LP, "Idempotency-Key": ""}}),
        ("POST", opening, {"json": {"start_at": [later] * 336}, "headers": FIREMAN}),
        ("POST", "/v1/classes", {"json": {**booking, "student_id": True}, "headers": LP}),
    ]
    no_problems(await odd(api, db, requests))
