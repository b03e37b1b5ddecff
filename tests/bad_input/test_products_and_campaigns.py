"""Bad input to product-directed slots (INT-1) and energy-stone campaigns (TCH-7): each refusal
is its own 4xx code and changes nothing.

covers: INT-1, TCH-7
"""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from store.db import Sessions
from tests.bad_input.checks import DAY, HOUR, World, refused
from tests.conftest import T0
from tests.helpers import FIREMAN, LP, as_, book

INTL = as_("intl", "intl-1")
MARKETING = as_("marketing", "m-1")


def reserve_url(teacher_id: int | str) -> str:
    return f"/v1/teachers/{teacher_id}/timeslots/reserve-for-product"


def release_url(teacher_id: int | str) -> str:
    return f"/v1/teachers/{teacher_id}/timeslots/release-to-general"


async def reserved(api: httpx.AsyncClient, teacher_id: int, slots: list[int], product: str) -> None:
    r = await api.post(
        reserve_url(teacher_id), json={"product": product, "timeslot_ids": slots}, headers=INTL
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"product": "tutoring", "timeslot_ids": [1]}, id="no such product"),
        pytest.param({"timeslot_ids": [1]}, id="no product"),
        pytest.param({"product": "dual_teacher", "timeslot_ids": []}, id="no slots"),
        pytest.param({"product": "dual_teacher", "timeslot_ids": ["one"]}, id="not an id"),
        pytest.param({"product": "dual_teacher", "timeslot_ids": 1}, id="not a list"),
    ],
)
async def test_malformed_reservation_is_422(
    api: httpx.AsyncClient, db: Sessions, world: World, body: dict[str, Any]
) -> None:
    """covers: INT-1"""
    await refused(
        api, db, "POST", reserve_url(world.teacher), 422, "malformed_body", json=body, headers=INTL
    )


async def test_a_slot_id_past_64_bits_is_422(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    """covers: INT-1"""
    body = {"product": "dual_teacher", "timeslot_ids": [2**70]}
    await refused(
        api, db, "POST", reserve_url(world.teacher), 422, "invalid_value", json=body, headers=INTL
    )


@pytest.mark.parametrize(
    ("setup", "status", "code"),
    [
        pytest.param("booked", 409, "slot_already_booked", id="booked"),
        pytest.param("closed", 409, "slot_not_open", id="closed"),
        pytest.param("other_product", 409, "slot_reserved", id="another product's"),
        pytest.param("other_teacher", 404, "timeslot_not_found", id="another teacher's"),
        pytest.param("no_such_slot", 404, "timeslot_not_found", id="no such slot"),
        pytest.param("no_such_teacher", 404, "teacher_not_found", id="no such teacher"),
    ],
)
async def test_a_reservation_with_one_bad_slot_reserves_none(
    api: httpx.AsyncClient, db: Sessions, world: World, setup: str, status: int, code: str
) -> None:
    """covers: INT-1"""
    t, good, bad = world.teacher, world.slots[0], world.slots[1]
    if setup == "booked":
        assert (await book(api, world.student, bad)).status_code == 201
    elif setup == "closed":
        r = await api.post(
            f"/v1/teachers/{t}/timeslots/close",
            json={"timeslot_ids": [bad]},
            headers=FIREMAN,
        )
        assert r.status_code == 200, r.text
    elif setup == "other_product":
        await reserved(api, t, [bad], "international")
    elif setup == "other_teacher":
        bad = world.foreign_slot
    elif setup == "no_such_slot":
        bad = 999_999_999
    elif setup == "no_such_teacher":
        t = 999_999_999
    body = {"product": "dual_teacher", "timeslot_ids": [good, bad]}
    await refused(api, db, "POST", reserve_url(t), status, code, json=body, headers=INTL)


async def test_only_product_slots_are_released(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    """A general slot is 409 not_product_slot; a booked product slot 409 slot_already_booked;
    either way the other slots named stay the product's.

    covers: INT-1"""
    t = world.teacher
    product_slot, general, booked = world.slots[0], world.slots[1], world.slots[2]
    await reserved(api, t, [product_slot, booked], "dual_teacher")
    r = await api.post(
        "/v1/classes",
        json={
            "student_id": world.student,
            "timeslot_id": booked,
            "course_type": "major",
            "product": "dual_teacher",
        },
        headers=INTL,
    )
    assert r.status_code == 201, r.text
    for other, code in ((general, "not_product_slot"), (booked, "slot_already_booked")):
        await refused(
            api,
            db,
            "POST",
            release_url(t),
            409,
            code,
            json={"timeslot_ids": [product_slot, other]},
            headers=INTL,
        )


async def test_bad_product_on_a_booking_or_availability(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    """covers: INT-1"""
    booking = {
        "student_id": world.student,
        "timeslot_id": world.slots[0],
        "course_type": "major",
    }
    await refused(
        api,
        db,
        "POST",
        "/v1/classes",
        422,
        "malformed_body",
        json={**booking, "product": "tutoring"},
        headers=INTL,
    )
    await refused(
        api,
        db,
        "POST",
        "/v1/classes",
        403,
        "product_not_sold_by_channel",
        json={**booking, "product": "dual_teacher"},
        headers=LP,
    )
    params = {
        "start_from": T0.isoformat(),
        "start_to": (T0 + DAY).isoformat(),
        "product": "tutoring",
    }
    await refused(api, db, "GET", "/v1/timeslots", 422, "malformed_body", params=params, headers=LP)
    # Listing a product line's slots is for the channels that sell it, like booking with it.
    for headers in (as_("parent_h5", world.student), LP):
        await refused(
            api,
            db,
            "GET",
            "/v1/timeslots",
            403,
            "product_not_sold_by_channel",
            params={**params, "product": "dual_teacher"},
            headers=headers,
        )


def campaign(**changes: Any) -> dict[str, Any]:
    return {
        "course_type": "major",
        "price": 80,
        "starts_at": (T0 + HOUR).isoformat(),
        "ends_at": (T0 + DAY).isoformat(),
        **changes,
    }


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(campaign(price=0), "malformed_body", id="free"),
        pytest.param(campaign(price=-5), "malformed_body", id="negative price"),
        pytest.param(campaign(price=10**7), "malformed_body", id="price too high"),
        pytest.param(campaign(price=2**70), "malformed_body", id="price past 64 bits"),
        pytest.param(campaign(price="eighty"), "malformed_body", id="price not a number"),
        pytest.param(campaign(course_type="chess"), "malformed_body", id="no such course type"),
        pytest.param(
            campaign(starts_at=(T0 + HOUR).replace(tzinfo=None).isoformat()),
            "malformed_body",
            id="no offset",
        ),
        pytest.param(campaign(ends_at="soon"), "malformed_body", id="not a time"),
        pytest.param(campaign(name="a\x00b"), "malformed_body", id="NUL in the name"),
        pytest.param(campaign(name="n" * 201), "malformed_body", id="name too long"),
        pytest.param(
            campaign(ends_at=(T0 + HOUR).isoformat()), "campaign_window_invalid", id="empty"
        ),
        pytest.param(
            campaign(ends_at=T0.isoformat()), "campaign_window_invalid", id="ends before it starts"
        ),
        pytest.param(
            campaign(starts_at=(T0 - HOUR).isoformat()),
            "campaign_window_invalid",
            id="starts in the past",
        ),
    ],
)
async def test_malformed_campaign_is_422(
    api: httpx.AsyncClient, db: Sessions, body: dict[str, Any], code: str
) -> None:
    """covers: TCH-7"""
    await refused(api, db, "POST", "/v1/stone-campaigns", 422, code, json=body, headers=MARKETING)


@pytest.mark.parametrize(
    ("campaign_id", "status", "code"),
    [
        pytest.param(lambda created: 999_999_999, 404, "campaign_not_found", id="no such"),
        pytest.param(lambda created: 2**70, 422, "malformed_body", id="past 64 bits"),
        pytest.param(lambda created: "x", 422, "malformed_body", id="not an id"),
    ],
)
async def test_ending_a_campaign_that_is_not_there(
    api: httpx.AsyncClient,
    db: Sessions,
    campaign_id: Callable[[int], object],
    status: int,
    code: str,
) -> None:
    """covers: TCH-7"""
    r = await api.post("/v1/stone-campaigns", json=campaign(), headers=MARKETING)
    assert r.status_code == 201, r.text
    url = f"/v1/stone-campaigns/{campaign_id(r.json()['id'])}/end"
    await refused(api, db, "POST", url, status, code, headers=MARKETING)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"in_force_at": "2030-01-07T10:00:00"}, id="no offset"),
        pytest.param({"course_type": "chess"}, id="no such course type"),
        pytest.param({"limit": "0"}, id="no rows"),
        pytest.param({"limit": "1001"}, id="too many rows"),
    ],
)
async def test_malformed_campaign_listing_is_422(
    api: httpx.AsyncClient, db: Sessions, params: dict[str, str]
) -> None:
    """covers: TCH-7"""
    await refused(
        api, db, "GET", "/v1/stone-campaigns", 422, "malformed_body", params=params, headers=LP
    )


async def test_an_overlapping_campaign_is_409(api: httpx.AsyncClient, db: Sessions) -> None:
    """covers: TCH-7"""
    r = await api.post("/v1/stone-campaigns", json=campaign(), headers=MARKETING)
    assert r.status_code == 201, r.text
    later = campaign(starts_at=(T0 + 2 * HOUR).isoformat(), ends_at=(T0 + 2 * DAY).isoformat())
    body = await refused(
        api,
        db,
        "POST",
        "/v1/stone-campaigns",
        409,
        "campaign_overlap",
        json=later,
        headers=MARKETING,
    )
    assert body["details"]["campaign_id"] == r.json()["id"]
