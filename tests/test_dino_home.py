"""Dino-home worry-free priority booking: only students with a finished class in the current
week (Mon-Sun, Asia/Shanghai) qualify; the LP books open slots or requests times for them in
bulk, each item with its own outcome.

covers: SD-3, LP-7
"""

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx

from domain.weekly import WEEK, week_of, week_start
from store.db import Sessions
from tests.conftest import T0, Clock, Stack
from tests.helpers import (
    FIREMAN,
    LP,
    as_,
    assert_money_consistent,
    balances,
    book,
    open_slots,
    snapshot,
    student,
    teacher,
)

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
ZONE = "Asia/Shanghai"
URL = "/v1/dino-home/priority"


async def finished_at(api: httpx.AsyncClient, t: int, start: datetime, credits: int = 3) -> int:
    """A student with a class at start, booked (at least 1 h ahead); the caller finishes it."""
    s = await student(api, credits={"major": credits})
    [slot] = await open_slots(api, t, start)
    r = await book(api, s, slot)
    assert r.status_code == 201, r.text
    return s


async def finish_all(api: httpx.AsyncClient, student_ids: list[int]) -> None:
    for s in student_ids:
        [c] = (await api.get(f"/v1/students/{s}/classes", headers=LP)).json()
        r = await api.post(
            f"/v1/classes/{c['id']}/finish", json={"label": "as_scheduled"}, headers=FIREMAN
        )
        assert r.status_code == 200, r.text


async def test_only_students_with_a_finished_class_this_week_are_booked(
    api: httpx.AsyncClient, clock: Clock, db: Sessions
) -> None:
    """T0 is Monday 08:00 in Shanghai: its week began on Sunday 16:00 UTC (T0 - 8 h)."""
    clock.now = T0 - 12 * HOUR
    t = await teacher(api)
    this_week = await finished_at(api, t, T0 - 8 * HOUR)  # Monday 00:00 Shanghai
    also_this_week = await finished_at(api, t, T0 + 30 * timedelta(minutes=1) - 8 * HOUR)
    last_week = await finished_at(api, t, T0 - 8 * HOUR - 30 * timedelta(minutes=1))  # Sun 23:30
    clock.now = T0 + HOUR
    not_finished = await finished_at(api, t, T0 + 3 * HOUR)  # booked this week, not finished
    nothing = await student(api, credits={"major": 3})
    await finish_all(api, [this_week, also_this_week, last_week])

    a, b, c = await open_slots(api, t, T0 + 2 * DAY, T0 + 3 * DAY, T0 + 4 * DAY)
    items = [
        {"student_id": this_week, "timeslot_id": a},
        {"student_id": last_week, "timeslot_id": b},
        {"student_id": not_finished, "timeslot_id": b},
        {"student_id": nothing, "timeslot_id": b},
        {"student_id": also_this_week, "timeslot_id": a},  # taken by the first item
        {"student_id": 999999, "timeslot_id": c},
        {"student_id": also_this_week, "timeslot_id": c},
    ]
    before = {s: (await balances(api, s))["credits"] for s in (last_week, not_finished, nothing)}
    r = await api.post(URL, json={"items": items, "course_type": "major"}, headers=LP)
    assert r.status_code == 200, r.text
    assert r.json()["week"] == "2030-01-07"
    results = r.json()["results"]
    assert [x["student_id"] for x in results] == [i["student_id"] for i in items]

    def outcome(x: dict[str, Any]) -> str:
        return x["error"]["code"] if x["error"] else x["booked"]["state"]

    assert [outcome(x) for x in results] == [
        "booked",
        "not_eligible",
        "not_eligible",
        "not_eligible",
        "slot_already_booked",
        "student_not_found",
        "booked",
    ]
    assert results[1]["error"]["status"] == 409
    assert results[1]["error"]["details"] == {"student_id": last_week, "week": "2030-01-07"}
    assert results[0]["booked"]["timeslot_id"] == a and results[6]["booked"]["timeslot_id"] == c
    assert results[0]["booked"]["channel"] == "lp"
    # The refused paid nothing, the booked one credit each; slot b is still open.
    for s, credits in before.items():
        assert (await balances(api, s))["credits"] == credits
    assert (await balances(api, this_week))["credits"] == {"major": 1}
    assert (await balances(api, also_this_week))["credits"] == {"major": 1}
    late = await book(api, nothing, b)
    assert late.status_code == 201, late.text
    await assert_money_consistent(db)


async def test_a_retry_replays_and_bad_input_and_other_channels_change_nothing(
    api: httpx.AsyncClient, clock: Clock, db: Sessions
) -> None:
    clock.now = T0 - 2 * HOUR
    t = await teacher(api)
    s = await finished_at(api, t, T0)
    clock.now = T0 + HOUR
    await finish_all(api, [s])
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    body = {"items": [{"student_id": s, "timeslot_id": slot}]}

    before = await snapshot(db)
    for channel in ("cc", "tmk", "fireman", "curriculum", "teacher", "parent_h5"):
        r = await api.post(URL, json=body, headers=as_(channel, s))
        assert (r.status_code, r.json()["code"]) == (403, "forbidden_channel"), channel
    for bad in (
        {"items": []},
        {"items": [{"student_id": s}]},
        {"items": [{"student_id": s, "timeslot_id": slot, "teacher_id": t}]},
        {"items": [{"student_id": s, "teacher_id": t}]},
        {"items": [{"student_id": s, "start_at": (T0 + DAY).isoformat()}]},
        {"items": [{"student_id": s, "timeslot_id": slot}], "course_type": "golf"},
        {"items": [{"student_id": s, "timeslot_id": slot}], "payment": {"asset": "coupon"}},
        {"items": [{"student_id": s, "timeslot_id": slot}] * 101},
    ):
        r = await api.post(URL, json=bad, headers=LP)
        assert (r.status_code, r.json()["code"]) == (422, "malformed_body"), bad
    assert await snapshot(db) == before

    headers = {**as_("supply_demand", "sd-1"), "Idempotency-Key": "dino-1"}
    first = await api.post(URL, json=body, headers=headers)
    again = await api.post(URL, json=body, headers=headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert first.json()["results"][0]["booked"]["state"] == "booked"
    assert (await balances(api, s))["credits"] == {"major": 1}
    await assert_money_consistent(db)


async def test_requests_go_through_the_class_request_flow(stack: Stack, db: Sessions) -> None:
    """An eligible student's item with a teacher and a time becomes a pending class request
    (its payment held); an ineligible one starts no flow."""
    api = stack.api
    now = await stack.now()
    week_end = week_start(week_of(now, ZONE), ZONE) + WEEK
    if week_end - now < 4 * HOUR:  # keep the finished class in the same week as the call
        await stack.env.sleep(week_end - now + timedelta(minutes=5))
        now = await stack.now()
    start = (now + 2 * HOUR).replace(minute=0, second=0, microsecond=0)
    t = await teacher(api)
    eligible = await finished_at(api, t, start)
    other = await student(api, credits={"major": 3})
    await stack.env.sleep(start - now + timedelta(minutes=5))
    await finish_all(api, [eligible])

    later = (start + 2 * DAY).isoformat()
    items = [
        {"student_id": eligible, "teacher_id": t, "start_at": later},
        {"student_id": other, "teacher_id": t, "start_at": later},
    ]
    r = await api.post(URL, json={"items": items}, headers=LP)
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert first["error"] is None and first["request"]["state"] == "pending"
    assert first["request"]["teacher_id"] == t
    assert second["request"] is None and second["error"]["code"] == "not_eligible"
    assert (await balances(api, eligible))["credits"] == {"major": 1}  # one paid, one held
    assert (await balances(api, other))["credits"] == {"major": 3}
    listed = await api.get("/v1/class-requests", params={"student_id": other}, headers=LP)
    assert listed.json() == []
    await assert_money_consistent(db)


async def test_the_monday_window_keeps_next_weeks_slots_for_dino_home_students(
    api: httpx.AsyncClient, clock: Clock, db: Sessions
) -> None:
    """From Monday 00:00 until the auto-booking run (12:03) Shanghai, next week's general slots
    are for students with a finished class this week or last (SD-3): both booking paths and
    availability keep them from the others (409 dino_home_priority); after 12:03 anyone books.
    """
    from domain.channels import Actor, Channel
    from domain.payment import Payment
    from domain.rules import BookingRules
    from domain.words import CourseType
    from store import classes

    clock.now = T0 - 3 * DAY  # Friday of the week before
    t = await teacher(api)
    eligible = await finished_at(api, t, T0 - 2 * DAY)  # Saturday: last week
    others = [await student(api, credits={"major": 3}) for _ in range(2)]
    next_week = T0 + 8 * DAY  # Tuesday 08:00 Shanghai, next week
    this_week, raced, kept = await open_slots(api, t, T0 + DAY, next_week, next_week + DAY)
    clock.now = T0 + HOUR  # Monday 09:00 Shanghai: inside the window
    await finish_all(api, [eligible])

    async def listed(s: int) -> list[int]:
        r = await api.get(
            "/v1/timeslots",
            params={
                "start_from": T0.isoformat(),
                "start_to": (T0 + 14 * DAY).isoformat(),
                "teacher_id": t,
                "student_id": s,
            },
            headers=as_("parent_h5", s),
        )
        assert r.status_code == 200, r.text
        return [slot["id"] for slot in r.json()]

    assert await listed(eligible) == [this_week, raced, kept]
    assert await listed(others[0]) == [this_week]

    before = await snapshot(db)
    fast = await classes.book_class_at_once(
        db,
        student_id=others[0],
        timeslot_id=kept,
        course_type=CourseType.major,
        payment=Payment(),
        lesson=None,
        actor=Actor(channel=Channel.lp, id="lp-1"),
        now=clock.now,
        rules=BookingRules(),
    )
    assert fast is None  # the one-statement path refuses and writes nothing
    r = await book(api, others[0], kept)
    assert (r.status_code, r.json()["code"]) == (409, "dino_home_priority"), r.text
    assert r.json()["details"] == {"timeslot_id": kept, "student_id": others[0]}
    assert await snapshot(db) == before

    # The race for one slot: only the dino-home student books it.
    won, lost = await asyncio.gather(book(api, eligible, raced), book(api, others[1], raced))
    assert won.status_code == 201, won.text
    assert lost.status_code == 409
    assert lost.json()["code"] in ("dino_home_priority", "slot_already_booked")
    r = await book(api, others[1], kept)
    assert (r.status_code, r.json()["code"]) == (409, "dino_home_priority")
    assert (await book(api, others[1], this_week)).status_code == 201  # this week: not kept

    clock.now = T0 + 4 * HOUR + 4 * timedelta(minutes=1)  # 12:04: the window is over
    assert await listed(others[0]) == [kept]
    r = await book(api, others[0], kept)
    assert r.status_code == 201, r.text
    await assert_money_consistent(db)
