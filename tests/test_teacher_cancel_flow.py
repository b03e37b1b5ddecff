"""Teacher-cancel holds through the API, on the time-skipping server.

covers: TCH-5
"""

from datetime import datetime, timedelta

import httpx

from store.db import Sessions
from tests.conftest import Stack
from tests.helpers import (
    FIREMAN,
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


async def booked_class(stack: Stack) -> tuple[int, int, int, datetime]:
    """A teacher, a student and a class between them two days ahead."""
    api = stack.api
    t = await teacher(api)
    s = await student(api, credits={"major": 2})
    start = on_grid(await stack.now(), 2 * DAY)
    [slot] = await open_slots(api, t, start)
    r = await book(api, s, slot)
    assert r.status_code == 201, r.text
    return t, s, r.json()["id"], start


async def teacher_cancels(
    api: httpx.AsyncClient, t: int, class_id: int, *offered: datetime
) -> httpx.Response:
    return await api.post(
        f"/v1/classes/{class_id}/teacher-cancel",
        json={"offered_start_at": [o.isoformat() for o in offered], "reason": "sick"},
        headers=as_("teacher", t),
    )


async def flow_result(stack: Stack, class_id: int) -> dict:
    return dict(await stack.env.client.get_workflow_handle(f"teacher-cancel-{class_id}").result())


async def test_student_books_one_offered_slot_and_the_others_go(stack: Stack, db: Sessions) -> None:
    api = stack.api
    t, s, class_id, start = await booked_class(stack)
    r = await teacher_cancels(api, t, class_id, start + DAY, start + 2 * DAY)
    assert r.status_code == 201, r.text
    hold = r.json()
    assert hold["state"] == "holding" and len(hold["offered"]) == 2
    assert (await balances(api, s))["credits"] == {"major": 2}  # refunded in full
    cancelled = (await api.get(f"/v1/classes/{class_id}", headers=LP)).json()
    assert (cancelled["state"], cancelled["refunded"]) == ("cancelled", True)

    # The held slots are the student's alone.
    intruder = await student(api, credits={"major": 1})
    first, second = (o["id"] for o in hold["offered"])
    r = await book(api, intruder, first)
    assert (r.status_code, r.json()["code"]) == (409, "slot_reserved")
    mine = await api.get(
        "/v1/timeslots",
        params={
            "start_from": start.isoformat(),
            "start_to": (start + 3 * DAY).isoformat(),
            "student_id": s,
        },
        headers=as_("parent_h5", s),
    )
    assert {x["id"] for x in mine.json()} == {first, second}

    r = await book(api, s, second)
    assert r.status_code == 201, r.text
    done = await flow_result(stack, class_id)
    assert (done["state"], done["booked_class_id"]) == ("booked", r.json()["id"])
    assert {o["id"]: o["state"] for o in done["offered"]} == {first: "removed", second: "booked"}
    await assert_money_consistent(db)


async def test_the_timer_removes_the_hold_after_24_hours(stack: Stack, db: Sessions) -> None:
    api = stack.api
    t, s, class_id, start = await booked_class(stack)
    hold = (await teacher_cancels(api, t, class_id, start + DAY)).json()
    [offered] = hold["offered"]
    await stack.env.sleep(DAY + timedelta(minutes=1))
    done = await flow_result(stack, class_id)
    assert done["state"] == "expired"
    assert done["offered"][0]["state"] == "removed"
    r = await book(api, s, offered["id"])
    assert (r.status_code, r.json()["code"]) == (409, "hold_expired")
    await assert_money_consistent(db)


async def test_fireman_extends_then_ends_a_hold(stack: Stack) -> None:
    api = stack.api
    t, _s, class_id, start = await booked_class(stack)
    hold = (await teacher_cancels(api, t, class_id, start + DAY)).json()
    until = datetime.fromisoformat(hold["expires_at"]) + DAY
    r = await api.post(
        f"/v1/teacher-cancels/{class_id}/extend", json={"until": until.isoformat()}, headers=FIREMAN
    )
    assert r.status_code == 200, r.text
    assert datetime.fromisoformat(r.json()["expires_at"]) == until
    assert datetime.fromisoformat(r.json()["offered"][0]["expires_at"]) == until
    await stack.env.sleep(DAY + HOUR)  # past the first expiry: still held
    assert (await api.get(f"/v1/teacher-cancels/{class_id}", headers=LP)).json()["state"] == (
        "holding"
    )
    r = await api.post(f"/v1/teacher-cancels/{class_id}/end", headers=FIREMAN)
    assert r.json()["state"] == "ended"
    assert (await flow_result(stack, class_id))["offered"][0]["state"] == "removed"
    r = await api.post(
        f"/v1/teacher-cancels/{class_id}/extend", json={"until": until.isoformat()}, headers=FIREMAN
    )
    assert (r.status_code, r.json()["code"]) == (409, "hold_closed")


async def test_expired_hold_cannot_be_booked_even_before_the_timer_runs(stack: Stack) -> None:
    """The slot's own expiry guards it: booking after 24 h is refused whatever the timer did."""
    api = stack.api
    t, s, class_id, start = await booked_class(stack)
    hold = (await teacher_cancels(api, t, class_id, start + DAY)).json()
    await stack.env.sleep(DAY + timedelta(seconds=1))
    r = await book(api, s, hold["offered"][0]["id"])
    assert (r.status_code, r.json()["code"]) == (409, "hold_expired")


async def test_only_the_classs_teacher_cancels(stack: Stack) -> None:
    api = stack.api
    _t, s, class_id, start = await booked_class(stack)
    other = await teacher(api)
    r = await teacher_cancels(api, other, class_id, start + DAY)
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_actor")
    r = await api.post(f"/v1/teacher-cancels/{class_id}/end", headers=LP)
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_channel")
    assert (await api.get(f"/v1/classes/{class_id}", headers=LP)).json()["state"] == "booked"
    assert (await balances(api, s))["credits"] == {"major": 1}


async def test_cancel_without_offers_and_on_behalf_by_fireman(stack: Stack, db: Sessions) -> None:
    api = stack.api
    t, _s, class_id, _ = await booked_class(stack)
    r = await api.post(
        f"/v1/classes/{class_id}/teacher-cancel", json={"reason": "no show"}, headers=FIREMAN
    )
    assert r.status_code == 201, r.text
    assert (r.json()["state"], r.json()["offered"]) == ("ended", [])
    assert (await flow_result(stack, class_id))["state"] == "ended"
    again = await api.post(
        f"/v1/classes/{class_id}/teacher-cancel", json={}, headers=as_("teacher", t)
    )
    assert (again.status_code, again.json()["code"]) == (409, "class_not_cancellable")
    await assert_money_consistent(db)


async def test_an_offered_time_the_teacher_is_busy_at_refuses_everything(stack: Stack) -> None:
    api = stack.api
    t, _s, class_id, start = await booked_class(stack)
    other = await student(api, credits={"major": 1})
    [busy] = await open_slots(api, t, start + DAY)
    assert (await book(api, other, busy)).status_code == 201
    r = await teacher_cancels(api, t, class_id, start + DAY)
    assert (r.status_code, r.json()["code"]) == (409, "teacher_busy")
    assert (await api.get(f"/v1/classes/{class_id}", headers=LP)).json()["state"] == "booked"
