"""Fake cancels through the API, on the time-skipping server.

covers: TMK-4, CC-4
"""

from datetime import datetime, timedelta

import httpx

from store.db import Sessions
from tests.conftest import Stack
from tests.helpers import (
    CC,
    LP,
    as_,
    assert_money_consistent,
    balances,
    book,
    open_slots,
    student,
    teacher,
)
from tests.test_class_request_flow import on_grid

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
TMK = as_("tmk")


async def booked_class(stack: Stack, ahead: timedelta = 2 * DAY) -> tuple[int, int, int, datetime]:
    """A teacher, a student and a class between them, booked by the parent."""
    api = stack.api
    t = await teacher(api)
    s = await student(api, credits={"major": 2})
    start = on_grid(await stack.now(), ahead)
    [slot] = await open_slots(api, t, start)
    r = await book(api, s, slot)
    assert r.status_code == 201, r.text
    return t, s, r.json()["id"], start


async def fake_cancel(
    api: httpx.AsyncClient, class_id: int, headers: dict[str, str] = TMK
) -> httpx.Response:
    return await api.post(
        f"/v1/classes/{class_id}/fake-cancel", json={"reason": "swap in"}, headers=headers
    )


async def flow_result(stack: Stack, class_id: int) -> dict:
    return dict(await stack.env.client.get_workflow_handle(f"fake-cancel-{class_id}").result())


async def test_the_channel_books_another_student_into_the_held_slot(
    stack: Stack, db: Sessions
) -> None:
    api = stack.api
    t, s, class_id, start = await booked_class(stack)
    now = await stack.now()
    r = await fake_cancel(api, class_id)
    assert r.status_code == 201, r.text
    hold = r.json()
    assert (hold["state"], hold["channel"], hold["refunded"]) == ("holding", "tmk", True)
    assert (hold["teacher_id"], hold["student_id"]) == (t, s)
    expires = datetime.fromisoformat(hold["expires_at"])
    assert timedelta(minutes=29) < expires - now <= timedelta(minutes=31)
    assert (await balances(api, s))["credits"] == {"major": 2}  # refunded in full
    cancelled = (await api.get(f"/v1/classes/{class_id}", headers=LP)).json()
    assert (cancelled["state"], cancelled["refunded"]) == ("cancelled", True)

    # Held for tmk: another channel, or the parent (the student's own), may not book it.
    slot = hold["timeslot_id"]
    other = await student(api, credits={"major": 1})
    for who, channel in ((other, "cc"), (s, "parent_h5"), (other, "lp")):
        r = await book(api, who, slot, channel=channel)
        assert (r.status_code, r.json()["code"]) == (409, "slot_reserved"), channel
    free = await api.get(
        "/v1/timeslots",
        params={"start_from": start.isoformat(), "start_to": (start + HOUR).isoformat()},
        headers=CC,
    )
    assert free.json() == []  # not general inventory while held

    r = await book(api, other, slot, channel="tmk")
    assert r.status_code == 201, r.text
    done = await flow_result(stack, class_id)
    assert (done["state"], done["booked_class_id"]) == ("booked", r.json()["id"])
    assert (await balances(api, other))["credits"] == {"major": 0}
    await assert_money_consistent(db)


async def test_the_timer_gives_the_slot_back_to_general_inventory(
    stack: Stack, db: Sessions
) -> None:
    api = stack.api
    _t, s, class_id, start = await booked_class(stack)
    r = await api.post(f"/v1/classes/{class_id}/fake-cancel", json={}, headers=CC)
    assert r.status_code == 201, r.text
    slot = r.json()["timeslot_id"]
    await stack.env.sleep(timedelta(minutes=31))
    done = await flow_result(stack, class_id)
    assert (done["state"], done["booked_class_id"]) == ("expired", None)
    free = await api.get(
        "/v1/timeslots",
        params={"start_from": start.isoformat(), "start_to": (start + HOUR).isoformat()},
        headers=CC,
    )
    assert [(x["id"], x["direction"]) for x in free.json()] == [(slot, "general")]
    # Anyone books it now, the student who was taken off included.
    r = await book(api, s, slot)
    assert r.status_code == 201, r.text
    await assert_money_consistent(db)


async def test_a_class_starting_within_the_hold_is_held_until_its_start(stack: Stack) -> None:
    api = stack.api
    _t, _s, class_id, start = await booked_class(stack, ahead=2 * HOUR)
    await stack.env.sleep(start - await stack.now() - timedelta(minutes=10))
    r = await fake_cancel(api, class_id)
    assert r.status_code == 201, r.text
    assert datetime.fromisoformat(r.json()["expires_at"]) == start
    await stack.env.sleep(timedelta(minutes=11))
    assert (await flow_result(stack, class_id))["state"] == "expired"


async def test_refusals_and_idempotency(stack: Stack, db: Sessions) -> None:
    api = stack.api
    _t, s, class_id, start = await booked_class(stack)
    r = await fake_cancel(api, 999_999)
    assert (r.status_code, r.json()["code"]) == (404, "class_not_found")
    r = await fake_cancel(api, class_id, as_("parent_h5", s))
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_channel")
    r = await api.post(
        f"/v1/classes/{class_id}/fake-cancel", json={"reason": "x" * 501}, headers=TMK
    )
    assert r.status_code == 422
    assert (await api.get(f"/v1/classes/{class_id}", headers=LP)).json()["state"] == "booked"

    key = as_("tmk", **{"Idempotency-Key": "fake-1"})
    first = await fake_cancel(api, class_id, key)
    assert first.status_code == 201, first.text
    again = await fake_cancel(api, class_id, key)
    assert (again.status_code, again.json()) == (201, first.json())
    r = await fake_cancel(api, class_id)
    assert (r.status_code, r.json()["code"]) == (409, "class_not_cancellable")
    assert (await balances(api, s))["credits"] == {"major": 2}  # refunded once

    _t, _s, started, start = await booked_class(stack, ahead=2 * HOUR)
    await stack.env.sleep(start - await stack.now() + timedelta(minutes=1))
    r = await fake_cancel(api, started)
    assert (r.status_code, r.json()["code"]) == (409, "class_started")
    await assert_money_consistent(db)
