"""Odd requests never get a 500: ids beyond 64 bits, NUL characters, datetimes at the edges of
the calendar, long actor ids, odd bodies. Whatever is refused is a JSON error that changed
nothing.

covers: PAR-1, H5-1, LP-2, LP-8, TCH-1
"""

from typing import Any

import httpx

from store.db import Sessions
from tests.bad_input.checks import DAY, JSON, Odd, World, no_problems, odd
from tests.conftest import T0
from tests.helpers import CC, FIREMAN, LP, as_, book


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
