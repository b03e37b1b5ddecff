"""Over-booking (超约) through the API, on the time-skipping server: book with no teacher, the
teacher reservation, the classroom match (pool, general, wait then match, wait then fail),
the in-class swap, the no-show, the instant class and the real booking after registration.

covers: TMK-1, CC-1, SD-5a, SD-5b, SD-5c, SD-5d, CLS-2, FM-7, H5-9, H5-10
"""

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from domain.overbooking import next_half_hour
from store.db import Sessions
from store.models import Class, Timeslot
from tests.conftest import Stack
from tests.helpers import (
    CC,
    FIREMAN,
    as_,
    assert_money_consistent,
    balances,
    open_slots,
    snapshot,
    student,
    teacher,
)

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
CLASSROOM = as_("classroom", "room-1")
SUPPLY = as_("supply_demand", "sd-1")


async def start_in(stack: Stack, ahead: timedelta) -> datetime:
    """A :00/:30 start at least `ahead` from the server's now."""
    return next_half_hour(await stack.now() + ahead)


async def overbook(
    api: httpx.AsyncClient, student_id: int, start_at: datetime, **extra: Any
) -> httpx.Response:
    body = {"student_id": student_id, "start_at": start_at.isoformat(), "course_type": "trial"}
    headers = extra.pop("headers", CC)
    return await api.post("/v1/overbooked-classes", json={**body, **extra}, headers=headers)


async def overbooked(api: httpx.AsyncClient, student_id: int, start_at: datetime) -> int:
    r = await overbook(api, student_id, start_at)
    assert r.status_code == 201, r.text
    assert (r.json()["state"], r.json()["teacher_id"]) == ("booked", None)
    return int(r.json()["class_id"])


async def enter(api: httpx.AsyncClient, class_id: int) -> dict[str, Any]:
    r = await api.post(f"/v1/classroom/classes/{class_id}/entered", headers=CLASSROOM)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def reserve(api: httpx.AsyncClient) -> dict[str, Any]:
    r = await api.post("/v1/teacher-reservations", json={"reason": "test"}, headers=SUPPLY)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def read(api: httpx.AsyncClient, class_id: int) -> dict[str, Any]:
    r = await api.get(f"/v1/overbooked-classes/{class_id}", headers=CLASSROOM)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def outcome(stack: Stack, class_id: int, start: datetime) -> dict[str, Any]:
    """The flow's result, once the server's clock has passed the end of the class."""
    if start + 31 * MINUTE > await stack.now():
        await sleep_until(stack, start + 31 * MINUTE)
    handle = stack.env.client.get_workflow_handle(f"overbook-{class_id}")
    return dict(await asyncio.wait_for(handle.result(), 30))


async def sleep_until(stack: Stack, moment: datetime) -> None:
    await stack.env.sleep(moment - await stack.now())


async def slot_state(db: Sessions, slot_id: int) -> tuple[str, str]:
    async with db() as session:
        slot = await session.get_one(Timeslot, slot_id)
        return slot.state.value, slot.direction.value


async def test_matched_from_the_pool_and_taught(stack: Stack, db: Sessions) -> None:
    """TMK-1/CC-1 booking paid at once; SD-5b reserves the teacher; CLS-2 matches from the pool;
    the flow closes the class as_scheduled at the end of its half hour."""
    api = stack.api
    t = await teacher(api, course_types=("trial",))
    s = await student(api, credits={"trial": 1})
    start = await start_in(stack, 2 * HOUR)
    [slot] = await open_slots(api, t, start)
    class_id = await overbooked(api, s, start)
    assert (await balances(api, s))["credits"] == {"trial": 0}  # paid at once

    run = await reserve(api)
    # ceil(1 × 1.2) = 2 wanted, one teacher free: one reserved, one short.
    assert (run["demand"], run["reserved"], run["short"]) == (1, 1, 1)
    assert await slot_state(db, slot) == ("open", "overbook_pool")
    assert (await reserve(api))["reserved"] == 0  # covered already

    await sleep_until(stack, start - 5 * MINUTE)
    matched = await enter(api, class_id)
    assert (matched["state"], matched["teacher_id"], matched["timeslot_id"]) == ("matched", t, slot)
    assert matched["matched_from"] == "overbook_pool"
    again = await enter(api, class_id)  # the classroom retries: same teacher
    assert (again["teacher_id"], again["timeslot_id"]) == (t, slot)
    assert (await read(api, class_id))["overbooked"]["teacher_id"] == t

    done = await outcome(stack, class_id, start)
    assert (done["state"], done["label"], done["class_state"]) == (
        "finished",
        "as_scheduled",
        "finished",
    )
    audit = await api.get(f"/v1/classes/{class_id}/audit", headers=FIREMAN)
    assert [e["action"] for e in audit.json()] == ["booked", "teacher_matched", "finished"]
    await assert_money_consistent(db)


async def test_matched_from_general_inventory(stack: Stack, db: Sessions) -> None:
    """Nothing reserved: the match falls back to any open general slot of a trial teacher."""
    api = stack.api
    major_only = await teacher(api, course_types=("major",))
    t = await teacher(api, course_types=("trial", "major"))
    s = await student(api, credits={"trial": 1})
    start = await start_in(stack, HOUR)
    await open_slots(api, major_only, start)
    [slot] = await open_slots(api, t, start)
    class_id = await overbooked(api, s, start)
    await sleep_until(stack, start - MINUTE)
    matched = await enter(api, class_id)
    assert (matched["teacher_id"], matched["timeslot_id"], matched["matched_from"]) == (
        t,
        slot,
        "general",
    )
    assert await slot_state(db, slot) == ("booked", "general")
    await assert_money_consistent(db)


async def test_student_waits_then_a_teacher_frees_up(stack: Stack, db: Sessions) -> None:
    """No teacher at entry: the student waits; the flow retries and matches when a slot opens."""
    api = stack.api
    t = await teacher(api, course_types=("trial",))
    s = await student(api, credits={"trial": 1})
    start = await start_in(stack, HOUR)
    class_id = await overbooked(api, s, start)
    await sleep_until(stack, start - 3 * MINUTE)
    waiting = await enter(api, class_id)
    assert (waiting["state"], waiting["teacher_id"]) == ("waiting", None)
    [slot] = await open_slots(api, t, start)
    await stack.env.sleep(2 * MINUTE)
    flow = await api.get(f"/v1/flows/overbook-{class_id}", headers=FIREMAN)
    assert flow.json()["state"]["state"] == "matched", flow.text
    now_read = (await read(api, class_id))["overbooked"]
    assert (now_read["teacher_id"], now_read["timeslot_id"]) == (t, slot)
    done = await outcome(stack, class_id, start)
    assert (done["state"], done["label"]) == ("finished", "as_scheduled")
    await assert_money_consistent(db)


async def test_student_waits_in_vain_and_is_refunded(stack: Stack, db: Sessions) -> None:
    """No teacher until start + 10 min: the class fails, the payment comes back in full."""
    api = stack.api
    s = await student(api, credits={"trial": 1})
    start = await start_in(stack, HOUR)
    class_id = await overbooked(api, s, start)
    await sleep_until(stack, start + MINUTE)
    assert (await enter(api, class_id))["state"] == "waiting"
    done = await outcome(stack, class_id, start)
    assert (done["state"], done["class_state"], done["refunded"]) == ("failed", "cancelled", True)
    assert (await balances(api, s))["credits"] == {"trial": 1}
    audit = (await api.get(f"/v1/classes/{class_id}/audit", headers=FIREMAN)).json()
    assert audit[-1]["action"] == "cancelled" and audit[-1]["details"]["reason"] == "no_teacher"
    await assert_money_consistent(db)


async def test_student_who_never_enters_is_a_no_show(stack: Stack, db: Sessions) -> None:
    """The class is finished as student_no_show at start + 30 min; the payment is kept. The
    pool slot reserved for it goes back to general inventory once its half hour is over."""
    api = stack.api
    t = await teacher(api, course_types=("trial",))
    s = await student(api, credits={"trial": 1})
    start = await start_in(stack, HOUR)
    [slot] = await open_slots(api, t, start)
    class_id = await overbooked(api, s, start)
    await reserve(api)
    assert await slot_state(db, slot) == ("open", "overbook_pool")
    done = await outcome(stack, class_id, start)
    assert (done["state"], done["label"], done["refunded"]) == (
        "finished",
        "student_no_show",
        False,
    )
    assert (await balances(api, s))["credits"] == {"trial": 0}
    late = await api.post(f"/v1/classroom/classes/{class_id}/entered", headers=CLASSROOM)
    assert late.json()["state"] == "finished"
    run = await reserve(api)
    assert run["released_past"] == 1
    assert await slot_state(db, slot) == ("open", "general")
    await assert_money_consistent(db)


async def test_fireman_swaps_the_teacher_in_class(stack: Stack, db: Sessions) -> None:
    """SD-5d / FM-7: another free teacher takes over; the old teacher's slot is removed and
    labelled; everything is audited."""
    api = stack.api
    first, second = (
        await teacher(api, course_types=("trial",)),
        await teacher(api, course_types=("trial",)),
    )
    s = await student(api, credits={"trial": 1})
    start = await start_in(stack, HOUR)
    [first_slot] = await open_slots(api, first, start)
    class_id = await overbooked(api, s, start)
    await sleep_until(stack, start - 10 * MINUTE)
    assert (await enter(api, class_id))["teacher_id"] == first
    body = {"label": "teacher_it_issue", "reason": "camera broken"}
    url = f"/v1/classes/{class_id}/swap-teacher"
    busy = await api.post(url, json=body, headers=FIREMAN)
    assert (busy.status_code, busy.json()["code"]) == (409, "no_teacher_free")
    await open_slots(api, second, start)

    await sleep_until(stack, start + 5 * MINUTE)
    before = await snapshot(db)
    wrong = await api.post(url, json={"label": "student_no_show"}, headers=FIREMAN)
    assert (wrong.status_code, wrong.json()["code"]) == (422, "not_a_teacher_label")
    refused = await api.post(url, json=body, headers=CLASSROOM)
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_channel")
    assert await snapshot(db) == before

    r = await api.post(url, json=body, headers=FIREMAN)
    assert r.status_code == 201, r.text
    swap = r.json()
    assert (swap["old_teacher_id"], swap["new_teacher_id"], swap["old_teacher_label"]) == (
        first,
        second,
        "teacher_it_issue",
    )
    assert await slot_state(db, first_slot) == ("removed", "general")
    now_read = await read(api, class_id)
    assert now_read["overbooked"]["teacher_id"] == second
    assert [x["id"] for x in now_read["swaps"]] == [swap["id"]]
    audit = (await api.get(f"/v1/classes/{class_id}/audit", headers=FIREMAN)).json()
    assert audit[-1]["action"] == "teacher_swapped"
    assert audit[-1]["details"]["old_teacher_label"] == "teacher_it_issue"
    old_audit = (await api.get(f"/v1/timeslots/{first_slot}/audit", headers=FIREMAN)).json()
    assert old_audit[-1]["action"] == "removed"
    done = await outcome(stack, class_id, start)
    assert (done["teacher_id"], done["label"]) == (second, "as_scheduled")
    await assert_money_consistent(db)


async def test_instant_class_is_matched_at_once(stack: Stack, db: Sessions) -> None:
    """H5-9: the next half hour with any free teacher, matched in the booking's transaction;
    with nobody free, a 409 and nothing charged."""
    api = stack.api
    now = await stack.now()
    if next_half_hour(now) - now > 15 * MINUTE:
        await stack.env.sleep(next_half_hour(now) - now - 10 * MINUTE)
    start = next_half_hour(await stack.now())
    s = await student(api, credits={"trial": 1})
    me = as_("parent_h5", s)
    before = await snapshot(db)
    nobody = await api.post("/v1/instant-classes", json={"student_id": s}, headers=me)
    assert (nobody.status_code, nobody.json()["code"]) == (409, "no_teacher_free")
    assert await snapshot(db) == before
    t = await teacher(api, course_types=("trial",))
    [slot] = await open_slots(api, t, start)
    r = await api.post("/v1/instant-classes", json={"student_id": s}, headers=me)
    assert r.status_code == 201, r.text
    booked = r.json()
    assert (booked["kind"], booked["state"], booked["teacher_id"], booked["timeslot_id"]) == (
        "instant",
        "matched",
        t,
        slot,
    )
    assert datetime.fromisoformat(booked["start_at"]) == start
    assert (await enter(api, booked["class_id"]))["teacher_id"] == t
    done = await outcome(stack, booked["class_id"], start)
    assert (done["state"], done["label"]) == ("finished", "as_scheduled")
    await assert_money_consistent(db)


async def test_real_booking_registers_and_books_a_trial(stack: Stack, db: Sessions) -> None:
    """H5-10: a new student, their trial credit and their over-booked trial in one call."""
    api = stack.api
    start = await start_in(stack, 3 * HOUR)
    r = await api.post(
        "/v1/overbooked-classes/real-booking",
        json={"name": "新同学", "parent_account": "wx-1", "start_at": start.isoformat()},
        headers=as_("parent_h5", "wx-openid-1"),
    )
    assert r.status_code == 201, r.text
    booked = r.json()
    assert (booked["kind"], booked["course_type"], booked["state"]) == (
        "real_booking",
        "trial",
        "booked",
    )
    assert (await balances(api, booked["student_id"]))["credits"] == {"trial": 0}
    flow = await api.get(f"/v1/flows/overbook-{booked['class_id']}", headers=FIREMAN)
    assert flow.json()["status"] == "RUNNING"
    await assert_money_consistent(db)


async def test_refusals_change_nothing(stack: Stack, db: Sessions) -> None:
    api = stack.api
    s = await student(api, credits={"trial": 1})
    broke = await student(api)
    start = await start_in(stack, 2 * HOUR)
    before = await snapshot(db)
    for response, expected in (
        (await overbook(api, s, start + 10 * MINUTE), (422, "off_grid")),
        (await overbook(api, s, start + 20 * DAY), (422, "outside_booking_window")),
        (await overbook(api, broke, start), (409, "insufficient_balance")),
        (await overbook(api, 999_999, start), (404, "student_not_found")),
        (await overbook(api, s, start, headers=as_("parent_h5", s)), (403, "forbidden_channel")),
        (
            await api.post("/v1/classroom/classes/999999/entered", headers=CLASSROOM),
            (404, "class_not_found"),
        ),
    ):
        assert (response.status_code, response.json()["code"]) == expected, response.text
    assert await snapshot(db) == before

    class_id = await overbooked(api, s, start)
    early = await api.post(f"/v1/classroom/classes/{class_id}/entered", headers=CLASSROOM)
    assert (early.status_code, early.json()["code"]) == (409, "classroom_closed")
    by_cc = await api.post(f"/v1/classroom/classes/{class_id}/entered", headers=CC)
    assert (by_cc.status_code, by_cc.json()["code"]) == (403, "forbidden_channel")
    no_teacher = await api.post(
        f"/v1/classes/{class_id}/swap-teacher", json={"label": "teacher_no_show"}, headers=FIREMAN
    )
    assert (no_teacher.status_code, no_teacher.json()["code"]) == (409, "class_has_no_teacher")
    twice = await overbook(api, s, start)
    assert (twice.status_code, twice.json()["code"]) == (409, "student_busy")
    await assert_money_consistent(db)


async def test_many_entries_race_for_few_pool_slots(stack: Stack, db: Sessions) -> None:
    """CLS-2 under concurrency: 30 students enter at once for 5 reserved teachers; each slot
    goes to one student only, the others wait."""
    api = stack.api
    start = await start_in(stack, HOUR)
    teachers = [await teacher(api, course_types=("trial",)) for _ in range(5)]
    slots = [slot for t in teachers for slot in await open_slots(api, t, start)]
    students = [await student(api, credits={"trial": 1}) for _ in range(30)]
    class_ids = [await overbooked(api, s, start) for s in students]
    run = await reserve(api)
    assert (run["demand"], run["reserved"], run["short"]) == (30, 5, 31)
    await sleep_until(stack, start - MINUTE)
    entries = await asyncio.gather(*(enter(api, c) for c in class_ids))
    matched = [e for e in entries if e["state"] == "matched"]
    assert len(matched) == 5
    assert sorted(e["timeslot_id"] for e in matched) == sorted(slots)
    assert sorted(e["teacher_id"] for e in matched) == sorted(teachers)
    assert sum(e["state"] == "waiting" for e in entries) == 25
    async with db() as session:
        live = await session.scalar(
            select(func.count(func.distinct(Class.timeslot_id))).where(
                Class.timeslot_id.is_not(None), Class.state == "booked"
            )
        )
    assert live == 5
    await assert_money_consistent(db)
