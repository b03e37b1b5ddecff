"""Class requests (求课) through the API, on the time-skipping server.

covers: TCH-3, TCH-4, LP-6
"""

from datetime import datetime, timedelta

import httpx
from sqlalchemy import select

from store.db import Sessions
from store.models import Timeslot
from tests.conftest import Stack
from tests.helpers import (
    LP,
    as_,
    assert_money_consistent,
    balances,
    book,
    open_slots,
    student,
    teacher,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def on_grid(moment: datetime, ahead: timedelta) -> datetime:
    """A :00/:30 start about `ahead` from moment."""
    t = moment + ahead
    return t.replace(minute=0 if t.minute < 30 else 30, second=0, microsecond=0)


async def ask(
    api: httpx.AsyncClient, student_id: int, teacher_id: int, start_at: datetime, **kw: object
) -> httpx.Response:
    headers = kw.pop("headers", None) or as_("parent_h5", student_id)
    body = {
        "student_id": student_id,
        "teacher_id": teacher_id,
        "start_at": start_at.isoformat(),
        "course_type": "major",
        **kw,
    }
    return await api.post("/v1/class-requests", json=body, headers=headers)  # type: ignore[arg-type]


async def result_of(stack: Stack, request_id: int) -> dict:
    handle = stack.env.client.get_workflow_handle(f"class-request-{request_id}")
    return dict(await handle.result())


async def test_approved_request_books_the_class_paid_by_the_hold(
    stack: Stack, db: Sessions
) -> None:
    """TCH-3 without keep: the slot is made, booked; a later early cancel removes it."""
    api = stack.api
    t = await teacher(api)
    s = await student(api, credits={"major": 2})
    start = on_grid(await stack.now(), 2 * DAY)
    r = await ask(api, s, t, start)
    assert r.status_code == 201, r.text
    request = r.json()
    assert request["state"] == "pending"
    created = datetime.fromisoformat(request["created_at"])
    assert datetime.fromisoformat(request["deadline"]) == created + DAY
    assert (await balances(api, s))["credits"] == {"major": 1}  # held at once

    pending = await api.get(
        "/v1/class-requests",
        params={"teacher_id": t, "state": "pending"},
        headers=as_("teacher", t),
    )
    assert [x["id"] for x in pending.json()] == [request["id"]]

    r = await api.post(
        f"/v1/class-requests/{request['id']}/approve", json={}, headers=as_("teacher", t)
    )
    assert r.status_code == 200, r.text
    approved = r.json()
    assert approved["state"] == "approved" and approved["class_id"] is not None
    assert (await balances(api, s))["credits"] == {"major": 1}
    cls = (await api.get(f"/v1/classes/{approved['class_id']}", headers=LP)).json()
    assert (cls["teacher_id"], cls["state"], cls["start_at"]) == (t, "booked", r.json()["start_at"])
    assert (await result_of(stack, request["id"]))["state"] == "approved"

    again = await api.post(
        f"/v1/class-requests/{request['id']}/reject", json={}, headers=as_("teacher", t)
    )
    assert (again.status_code, again.json()["code"]) == (409, "request_closed")

    r = await api.post(f"/v1/classes/{cls['id']}/cancel", json={}, headers=as_("parent_h5", s))
    assert r.json()["refunded"] is True
    async with db() as session:
        slot = await session.get_one(Timeslot, cls["timeslot_id"])
    assert slot.state == "removed"
    assert (await balances(api, s))["credits"] == {"major": 2}
    await assert_money_consistent(db)


async def test_approved_with_keep_turns_into_general_inventory_on_cancel(
    stack: Stack, db: Sessions
) -> None:
    """TCH-3 with keep: request-directed while booked, general once the student cancels."""
    api = stack.api
    t = await teacher(api)
    s = await student(api, credits={"major": 1})
    start = on_grid(await stack.now(), 3 * DAY)
    request = (await ask(api, s, t, start, headers=LP)).json()
    r = await api.post(
        f"/v1/class-requests/{request['id']}/approve",
        json={"keep_slot": True},
        headers=as_("teacher", t),
    )
    approved = r.json()
    assert approved["keep_slot"] is True
    cls = (await api.get(f"/v1/classes/{approved['class_id']}", headers=LP)).json()
    async with db() as session:
        slot = await session.get_one(Timeslot, cls["timeslot_id"])
    assert (slot.direction, slot.direction_target) == ("request", str(request["id"]))
    await api.post(f"/v1/classes/{cls['id']}/cancel", json={}, headers=LP)
    async with db() as session:
        slot = await session.get_one(Timeslot, cls["timeslot_id"])
    assert (slot.state, slot.direction) == ("open", "general")
    # Anyone may book it now.
    other = await student(api, credits={"major": 1})
    assert (await book(api, other, slot.id)).status_code == 201
    await assert_money_consistent(db)


async def test_rejected_request_returns_the_hold(stack: Stack, db: Sessions) -> None:
    """TCH-4."""
    api = stack.api
    t = await teacher(api)
    s = await student(api)
    await api.post(f"/v1/students/{s}/grants", json={"asset": "stones", "amount": 100}, headers=LP)
    start = on_grid(await stack.now(), 2 * DAY)
    request = (await ask(api, s, t, start, payment={"asset": "stones"})).json()
    assert (await balances(api, s))["stones"] == 0
    r = await api.post(
        f"/v1/class-requests/{request['id']}/reject",
        json={"reason": "on holiday"},
        headers=as_("teacher", t),
    )
    assert (r.json()["state"], r.json()["reason"]) == ("rejected", "on holiday")
    assert (await balances(api, s))["stones"] == 100
    await assert_money_consistent(db)


async def test_unanswered_request_expires_at_its_deadline(stack: Stack, db: Sessions) -> None:
    """The deadline is min(created + 24 h, start - 2 h); then the hold returns."""
    api = stack.api
    t = await teacher(api)
    s = await student(api, credits={"major": 1})
    now = await stack.now()
    start = on_grid(now, 6 * HOUR)
    request = (await ask(api, s, t, start)).json()
    assert datetime.fromisoformat(request["deadline"]) == start - 2 * HOUR
    await stack.env.sleep(start - 2 * HOUR - now - timedelta(minutes=5))
    still = (await api.get(f"/v1/class-requests/{request['id']}", headers=LP)).json()
    assert still["state"] == "pending"
    await stack.env.sleep(timedelta(minutes=10))
    expired = await result_of(stack, request["id"])
    assert expired["state"] == "expired"
    assert (await balances(api, s))["credits"] == {"major": 1}
    late = await api.post(
        f"/v1/class-requests/{request['id']}/approve", json={}, headers=as_("teacher", t)
    )
    assert (late.status_code, late.json()["code"]) == (409, "request_closed")
    await assert_money_consistent(db)


async def test_requester_withdraws(stack: Stack, db: Sessions) -> None:
    """LP-6: the requester withdraws while it waits."""
    api = stack.api
    t = await teacher(api)
    s = await student(api, credits={"major": 1})
    request = (await ask(api, s, t, on_grid(await stack.now(), 2 * DAY), headers=LP)).json()
    r = await api.post(f"/v1/class-requests/{request['id']}/withdraw", json={}, headers=LP)
    assert r.json()["state"] == "withdrawn"
    assert (await balances(api, s))["credits"] == {"major": 1}
    await assert_money_consistent(db)


async def test_approval_fails_cleanly_when_the_teacher_got_busy(stack: Stack, db: Sessions) -> None:
    api = stack.api
    t = await teacher(api)
    s, other = await student(api, credits={"major": 1}), await student(api, credits={"major": 1})
    start = on_grid(await stack.now(), 2 * DAY)
    request = (await ask(api, s, t, start)).json()
    [slot] = await open_slots(api, t, start)
    assert (await book(api, other, slot)).status_code == 201
    r = await api.post(
        f"/v1/class-requests/{request['id']}/approve", json={}, headers=as_("teacher", t)
    )
    assert (r.status_code, r.json()["code"]) == (409, "teacher_busy")
    closed = (await api.get(f"/v1/class-requests/{request['id']}", headers=LP)).json()
    assert (closed["state"], closed["reason"]) == ("failed", "teacher_busy")
    assert (await balances(api, s))["credits"] == {"major": 1}
    await assert_money_consistent(db)


async def test_approval_fails_cleanly_when_the_student_got_busy(stack: Stack, db: Sessions) -> None:
    api = stack.api
    t, t2 = await teacher(api), await teacher(api)
    s = await student(api, credits={"major": 2})
    start = on_grid(await stack.now(), 2 * DAY)
    request = (await ask(api, s, t, start)).json()
    [slot] = await open_slots(api, t2, start)
    assert (await book(api, s, slot)).status_code == 201
    r = await api.post(
        f"/v1/class-requests/{request['id']}/approve", json={}, headers=as_("teacher", t)
    )
    assert (r.status_code, r.json()["code"]) == (409, "student_busy")
    assert (await balances(api, s))["credits"] == {"major": 1}
    await assert_money_consistent(db)


async def test_an_open_slot_of_the_teacher_is_taken_over_on_approval(stack: Stack) -> None:
    api = stack.api
    t = await teacher(api)
    s = await student(api, credits={"major": 1})
    start = on_grid(await stack.now(), 2 * DAY)
    request = (await ask(api, s, t, start)).json()
    [slot] = await open_slots(api, t, start)
    r = await api.post(
        f"/v1/class-requests/{request['id']}/approve", json={}, headers=as_("teacher", t)
    )
    cls = (await api.get(f"/v1/classes/{r.json()['class_id']}", headers=LP)).json()
    assert cls["timeslot_id"] == slot


async def test_only_the_requested_teacher_answers_and_parents_act_for_their_own(
    stack: Stack, db: Sessions
) -> None:
    api = stack.api
    t, intruder = await teacher(api), await teacher(api)
    s, other = await student(api, credits={"major": 1}), await student(api, credits={"major": 1})
    start = on_grid(await stack.now(), 2 * DAY)
    r = await ask(api, other, t, start, headers=as_("parent_h5", s))
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_actor")
    request = (await ask(api, s, t, start)).json()
    r = await api.post(
        f"/v1/class-requests/{request['id']}/approve", json={}, headers=as_("teacher", intruder)
    )
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_actor")
    r = await api.post(
        f"/v1/class-requests/{request['id']}/withdraw", json={}, headers=as_("parent_pc", other)
    )
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_actor")
    r = await api.post(f"/v1/class-requests/{request['id']}/approve", json={}, headers=LP)
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_channel")
    still = (await api.get(f"/v1/class-requests/{request['id']}", headers=LP)).json()
    assert still["state"] == "pending"
    assert (await balances(api, other))["credits"] == {"major": 1}


async def test_refusals_before_and_inside_the_flow(stack: Stack, db: Sessions) -> None:
    api = stack.api
    t = await teacher(api)
    s = await student(api)
    now = await stack.now()
    too_soon = await ask(api, s, t, on_grid(now, 2 * HOUR))
    assert (too_soon.status_code, too_soon.json()["code"]) == (422, "outside_booking_window")
    off = await ask(api, s, t, on_grid(now, DAY) + timedelta(minutes=10))
    assert (off.status_code, off.json()["code"]) == (422, "off_grid")
    broke = await ask(api, s, t, on_grid(now, DAY))
    assert (broke.status_code, broke.json()["code"]) == (409, "insufficient_balance")
    unknown = await ask(api, s, 999_999, on_grid(now, DAY))
    assert (unknown.status_code, unknown.json()["code"]) == (404, "teacher_not_found")
    listed = await api.get("/v1/class-requests", params={"student_id": s}, headers=LP)
    assert listed.json() == []
    await assert_money_consistent(db)


async def test_lp_batch_lists_each_outcome(stack: Stack, db: Sessions) -> None:
    """LP-6 in bulk: each request its own flow, one response."""
    api = stack.api
    t = await teacher(api)
    rich = await student(api, credits={"major": 3})
    poor = await student(api)
    start = on_grid(await stack.now(), 2 * DAY)
    items = [
        {
            "student_id": rich,
            "teacher_id": t,
            "start_at": start.isoformat(),
            "course_type": "major",
        },
        {
            "student_id": rich,
            "teacher_id": t,
            "start_at": (start + HOUR).isoformat(),
            "course_type": "major",
        },
        {
            "student_id": poor,
            "teacher_id": t,
            "start_at": start.isoformat(),
            "course_type": "major",
        },
    ]
    r = await api.post("/v1/class-requests/batch", json={"requests": items}, headers=LP)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["request"]["state"] if x["request"] else None for x in results] == [
        "pending",
        "pending",
        None,
    ]
    assert results[2]["error"]["code"] == "insufficient_balance"
    assert (await balances(api, rich))["credits"] == {"major": 1}
    async with db() as session:
        assert (await session.scalars(select(Timeslot))).all() == []
    await assert_money_consistent(db)


async def test_answers_take_an_idempotency_key(stack: Stack, db: Sessions) -> None:
    """A teacher's retried approval gets the first answer back, not a 409."""
    api = stack.api
    t = await teacher(api)
    s = await student(api, credits={"major": 1})
    request = (await ask(api, s, t, on_grid(await stack.now(), 2 * DAY))).json()
    headers = as_("teacher", t, **{"Idempotency-Key": "approve-once"})
    url = f"/v1/class-requests/{request['id']}/approve"
    first = await api.post(url, json={}, headers=headers)
    again = await api.post(url, json={}, headers=headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    other = await api.post(url, json={"keep_slot": True}, headers=headers)
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    await assert_money_consistent(db)
