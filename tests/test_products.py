"""Product-directed slots (INT-1): the intl channel reserves a teacher's open slots for a product
line; only a booking for that product takes them, in the one-statement path and in the
step-by-step one; a general booking is refused (409 slot_for_product) and writes nothing;
availability lists them only to that product's queries; releasing them, they are general
inventory again; a product class cancelled gives its slot back to the product.

covers: INT-1
"""

import asyncio
from datetime import timedelta
from typing import Any

import httpx

from domain.channels import Actor, Channel
from domain.payment import Payment
from domain.rules import BookingRules
from domain.words import CourseType, Product
from store import classes
from store.db import Sessions
from tests.conftest import T0, Clock
from tests.helpers import as_, assert_money_consistent, balances, book, open_slots, snapshot
from tests.helpers import student as new_student
from tests.helpers import teacher as new_teacher

DAY = timedelta(days=1)
INTL = as_("intl", "intl-1")


async def reserve(
    api: httpx.AsyncClient, teacher_id: int, slots: list[int], product: str = "dual_teacher"
) -> httpx.Response:
    return await api.post(
        f"/v1/teachers/{teacher_id}/timeslots/reserve-for-product",
        json={"product": product, "timeslot_ids": slots},
        headers=INTL,
    )


async def release(api: httpx.AsyncClient, teacher_id: int, slots: list[int]) -> httpx.Response:
    return await api.post(
        f"/v1/teachers/{teacher_id}/timeslots/release-to-general",
        json={"timeslot_ids": slots},
        headers=INTL,
    )


async def book_for(
    api: httpx.AsyncClient,
    student_id: int,
    timeslot_id: int,
    product: str | None,
    *,
    step_by_step: bool = False,
    channel: str = "intl",
) -> httpx.Response:
    """A booking through the route: the one-statement path, or (with an Idempotency-Key) the
    step-by-step one."""
    extra = {"Idempotency-Key": f"k-{student_id}-{timeslot_id}"} if step_by_step else {}
    body: dict[str, Any] = {
        "student_id": student_id,
        "timeslot_id": timeslot_id,
        "course_type": "major",
    }
    if product is not None:
        body["product"] = product
    return await api.post("/v1/classes", json=body, headers=as_(channel, "staff-1", **extra))


async def listed(api: httpx.AsyncClient, teacher_id: int, **params: str) -> list[int]:
    r = await api.get(
        "/v1/timeslots",
        params={
            "start_from": T0.isoformat(),
            "start_to": (T0 + 7 * DAY).isoformat(),
            "teacher_id": str(teacher_id),
            **params,
        },
        headers=as_("intl"),
    )
    assert r.status_code == 200, r.text
    return [int(s["id"]) for s in r.json()]


async def test_reserved_slots_are_directed_at_the_product(api: httpx.AsyncClient) -> None:
    t = await new_teacher(api)
    slots = await open_slots(api, t, T0 + DAY, T0 + 2 * DAY)
    r = await reserve(api, t, slots)
    assert r.status_code == 200, r.text
    assert [(s["direction"], s["direction_target"]) for s in r.json()["timeslots"]] == [
        ("product", "dual_teacher")
    ] * 2
    again = await reserve(api, t, slots)  # already this product's: stays so
    assert again.status_code == 200, again.text
    trail = (await api.get(f"/v1/timeslots/{slots[0]}/audit", headers=as_("fireman"))).json()
    assert [e["action"] for e in trail] == ["opened", "directed", "directed"]


async def test_a_general_booking_cannot_take_a_product_slot(
    api: httpx.AsyncClient, db: Sessions, clock: Clock
) -> None:
    """Neither path takes it without the product, nor with another product; nothing is
    written."""
    t = await new_teacher(api)
    s = await new_student(api, credits={"major": 3})
    [slot] = await open_slots(api, t, T0 + DAY)
    assert (await reserve(api, t, [slot])).status_code == 200
    before = await snapshot(db)
    assert (
        await classes.book_class_at_once(
            db,
            student_id=s,
            timeslot_id=slot,
            course_type=CourseType.major,
            payment=Payment(),
            lesson=None,
            actor=Actor(channel=Channel.intl, id="intl-1"),
            now=clock.now,
            rules=BookingRules(),
            product=Product.international,
        )
        is None
    )
    for r in (
        await book(api, s, slot),
        await book_for(api, s, slot, None),
        await book_for(api, s, slot, None, step_by_step=True),
        await book_for(api, s, slot, "international"),
        await book_for(api, s, slot, "international", step_by_step=True),
    ):
        assert (r.status_code, r.json()["code"]) == (409, "slot_for_product"), r.text
        assert r.json()["details"]["product"] == "dual_teacher"
    assert await snapshot(db) == before


async def test_a_product_booking_takes_it_in_both_paths(
    api: httpx.AsyncClient, db: Sessions, clock: Clock
) -> None:
    """And a product booking may take a general slot too."""
    t = await new_teacher(api)
    s = await new_student(api, credits={"major": 3})
    product_slots = await open_slots(api, t, T0 + 2 * DAY, T0 + 3 * DAY)
    [general] = await open_slots(api, t, T0 + 4 * DAY)
    assert (await reserve(api, t, product_slots)).status_code == 200

    direct = await classes.book_class_at_once(
        db,
        student_id=s,
        timeslot_id=product_slots[0],
        course_type=CourseType.major,
        payment=Payment(),
        lesson=None,
        actor=Actor(channel=Channel.intl, id="intl-1"),
        now=clock.now,
        rules=BookingRules(),
        product=Product.dual_teacher,
    )
    assert direct is not None and direct["timeslot_id"] == product_slots[0]
    r = await api.post(f"/v1/classes/{direct['id']}/cancel", json={}, headers=INTL)
    assert r.status_code == 200, r.text
    at_once = await book_for(api, s, product_slots[0], "dual_teacher")
    step_by_step = await book_for(api, s, product_slots[1], "dual_teacher", step_by_step=True)
    on_general = await book_for(api, s, general, "dual_teacher")
    for r in (at_once, step_by_step, on_general):
        assert r.status_code == 201, r.text
        trail = await api.get(f"/v1/classes/{r.json()['id']}/audit", headers=as_("fireman"))
        assert trail.json()[0]["details"]["product"] == "dual_teacher"
    direct_trail = await api.get(f"/v1/classes/{direct['id']}/audit", headers=as_("fireman"))
    assert direct_trail.json()[0]["details"]["product"] == "dual_teacher"
    assert (await balances(api, s))["credits"] == {"major": 0}
    await assert_money_consistent(db)


async def test_only_a_channel_that_sells_the_product_may_name_it(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    t = await new_teacher(api)
    s = await new_student(api, credits={"major": 1})
    [slot] = await open_slots(api, t, T0 + DAY)
    assert (await reserve(api, t, [slot])).status_code == 200
    before = await snapshot(db)
    for channel in ("lp", "parent_h5"):
        r = await api.post(
            "/v1/classes",
            json={
                "student_id": s,
                "timeslot_id": slot,
                "course_type": "major",
                "product": "dual_teacher",
            },
            headers=as_(channel, s if channel == "parent_h5" else "lp-1"),
        )
        assert (r.status_code, r.json()["code"]) == (403, "product_not_sold_by_channel"), r.text
    assert await snapshot(db) == before


async def test_release_returns_the_slot_to_general_inventory(api: httpx.AsyncClient) -> None:
    t = await new_teacher(api)
    s = await new_student(api, credits={"major": 1})
    [slot] = await open_slots(api, t, T0 + DAY)
    assert (await reserve(api, t, [slot])).status_code == 200
    r = await release(api, t, [slot])
    assert r.status_code == 200, r.text
    assert [(x["direction"], x["direction_target"]) for x in r.json()["timeslots"]] == [
        ("general", None)
    ]
    booked = await book(api, s, slot)
    assert booked.status_code == 201, booked.text
    trail = await api.get(f"/v1/classes/{booked.json()['id']}/audit", headers=as_("fireman"))
    assert "product" not in trail.json()[0]["details"]


async def test_availability_shows_product_slots_only_to_that_products_queries(
    api: httpx.AsyncClient,
) -> None:
    t = await new_teacher(api)
    general, dual, intl = await open_slots(api, t, T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY)
    assert (await reserve(api, t, [dual])).status_code == 200
    assert (await reserve(api, t, [intl], "international")).status_code == 200

    assert await listed(api, t) == [general]
    assert await listed(api, t, product="dual_teacher") == [general, dual]
    assert await listed(api, t, product="international") == [general, intl]
    assert (await release(api, t, [dual])).status_code == 200
    assert await listed(api, t) == [general, dual]


async def test_a_cancelled_product_class_gives_the_slot_back_to_the_product(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """In both cancel paths (the one statement, and the step-by-step one with a key)."""
    t = await new_teacher(api)
    s = await new_student(api, credits={"major": 4})
    slots = await open_slots(api, t, T0 + 2 * DAY, T0 + 3 * DAY)
    assert (await reserve(api, t, slots)).status_code == 200
    for i, slot in enumerate(slots):
        booked = await book_for(api, s, slot, "dual_teacher")
        assert booked.status_code == 201, booked.text
        headers = as_("intl", "intl-1", **({"Idempotency-Key": f"c-{slot}"} if i else {}))
        cancelled = await api.post(
            f"/v1/classes/{booked.json()['id']}/cancel", json={}, headers=headers
        )
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["refunded"] is True
        refused = await book_for(api, s, slot, None)
        assert (refused.status_code, refused.json()["code"]) == (409, "slot_for_product")
    assert await listed(api, t, product="dual_teacher") == slots
    await assert_money_consistent(db)


async def test_a_reservation_racing_a_general_booking(api: httpx.AsyncClient, db: Sessions) -> None:
    """Raced through the API, round after round: either the booking wins (the reservation is
    409 slot_already_booked) or the reservation does (the booking is 409 slot_for_product);
    never both, never a product slot under a general class."""
    t = await new_teacher(api)
    s = await new_student(api, credits={"major": 10})
    slots = await open_slots(api, t, *(T0 + DAY + i * timedelta(hours=1) for i in range(10)))
    for slot in slots:
        reserving, booking = await asyncio.gather(reserve(api, t, [slot]), book(api, s, slot))
        outcome = (
            (reserving.status_code, reserving.json().get("code")),
            (
                booking.status_code,
                booking.json().get("code") if booking.status_code != 201 else None,
            ),
        )
        assert outcome in {
            ((200, None), (409, "slot_for_product")),
            ((409, "slot_already_booked"), (201, None)),
        }, (reserving.text, booking.text)
    booked = (await api.get(f"/v1/students/{s}/classes", headers=INTL)).json()
    directed = await listed(api, t, product="dual_teacher")
    assert {c["timeslot_id"] for c in booked}.isdisjoint(directed)
    assert len(booked) + len(directed) == len(slots)
    await assert_money_consistent(db)
