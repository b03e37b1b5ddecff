"""Learning progress, the all-round advanced pair (a Chinese and a foreign teacher's classes
of the next lesson, all or nothing), and the LP's make-up with the exclusive teacher.

covers: CUR-1, TMK-7, CC-8, CC-2, SD-4
"""

from datetime import timedelta
from typing import Any

import httpx

from store.db import Sessions
from tests.conftest import T0, Clock
from tests.helpers import (
    CC,
    LP,
    as_,
    assert_money_consistent,
    balances,
    book,
    open_slots,
    refused,
    student,
    teacher,
)

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
CURRICULUM = as_("curriculum", "cur-1")


async def progress(api: httpx.AsyncClient, s: int, **body: Any) -> dict[str, Any]:
    r = await api.post("/v1/learning-progress", json={"student_id": s, **body}, headers=CURRICULUM)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_progress_is_created_once_per_course_by_its_channels(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """CUR-1 bootcamp, TMK-7, CC-8: curriculum, TMK, CC and LP create learning progress."""
    s = await student(api)
    created = await progress(api, s, lessons=12)
    assert {k: created[k] for k in ("student_id", "course", "next_lesson", "lessons", "state")} == {
        "student_id": s,
        "course": "advanced_bootcamp",
        "next_lesson": 1,
        "lessons": 12,
        "state": "active",
    }
    details = await refused(
        api, db, "/v1/learning-progress", {"student_id": s}, CC, 409, "learning_progress_exists"
    )
    assert details["learning_progress_id"] == created["id"]
    for channel, course in (("tmk", "trial_camp"), ("cc", "phonics"), ("lp", "reading_2")):
        r = await api.post(
            "/v1/learning-progress",
            json={"student_id": s, "course": course, "first_lesson": 3},
            headers=as_(channel),
        )
        assert (r.status_code, r.json()["channel"], r.json()["next_lesson"]) == (201, channel, 3)
    listed = await api.get(f"/v1/students/{s}/learning-progress", headers=as_("parent_h5", s))
    assert [p["course"] for p in listed.json()] == [
        "advanced_bootcamp",
        "trial_camp",
        "phonics",
        "reading_2",
    ]
    other = await api.get(f"/v1/students/{s}/learning-progress", headers=as_("parent_h5", s + 1))
    assert (other.status_code, other.json()["code"]) == (403, "forbidden_actor")

    url = "/v1/learning-progress"
    await refused(api, db, url, {"student_id": 999999}, CC, 404, "student_not_found")
    for bad in (
        {"student_id": s, "course": "Bad Course"},
        {"student_id": s, "course": ""},
        {"student_id": s, "lessons": 0},
        {"student_id": s, "first_lesson": 0},
        {"course": "x"},
    ):
        await refused(api, db, url, bad, CC, 422, "malformed_body")
    for channel in ("fireman", "supply_demand", "parent_h5", "teacher", "marketing"):
        body = {"student_id": s, "course": "other"}
        await refused(api, db, url, body, as_(channel, s), 403, "forbidden_channel")


async def pair_world(api: httpx.AsyncClient) -> dict[str, Any]:
    zh = await teacher(api, kind="chinese", course_types=("advanced",))
    en = await teacher(api, kind="foreign", course_types=("advanced", "major"))
    en_major = await teacher(api, kind="foreign", course_types=("major",))
    s = await student(api, credits={"advanced": 5})
    return {
        "zh": zh,
        "en": en,
        "s": s,
        "zh_slots": await open_slots(api, zh, T0 + 2 * DAY, T0 + 3 * DAY, T0 + 4 * DAY),
        "en_slots": await open_slots(
            api, en, T0 + 2 * DAY + HOUR, T0 + 3 * DAY + HOUR, T0 + 4 * DAY + HOUR
        ),
        "en_major_slot": (await open_slots(api, en_major, T0 + 5 * DAY))[0],
    }


async def test_the_pair_books_the_next_lesson_and_advances_it(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """CUR-1, CC-2: both classes of lesson n, one advanced credit each; the progress moves to
    n + 1 and completes after its last lesson."""
    w = await pair_world(api)
    p = await progress(api, w["s"], lessons=2)

    def pair(n: int, **over: Any) -> dict[str, Any]:
        return {
            "student_id": w["s"],
            "learning_progress_id": p["id"],
            "chinese_timeslot_id": w["zh_slots"][n],
            "foreign_timeslot_id": w["en_slots"][n],
            **over,
        }

    r = await api.post("/v1/advanced-classes", json=pair(0), headers=CURRICULUM)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["lesson"] == 1
    assert (got["learning_progress"]["next_lesson"], got["learning_progress"]["state"]) == (
        2,
        "active",
    )
    assert (got["chinese"]["teacher_id"], got["foreign"]["teacher_id"]) == (w["zh"], w["en"])
    for c in (got["chinese"], got["foreign"]):
        assert (c["course_type"], c["lesson"], c["state"]) == (
            "advanced",
            "advanced_bootcamp#1",
            "booked",
        )
    r = await api.post("/v1/advanced-classes", json=pair(1), headers=CC)
    assert r.status_code == 201, r.text
    assert r.json()["chinese"]["lesson"] == "advanced_bootcamp#2"
    assert r.json()["learning_progress"]["state"] == "completed"
    assert (await balances(api, w["s"]))["credits"] == {"advanced": 1}
    details = await refused(
        api, db, "/v1/advanced-classes", pair(2), CURRICULUM, 409, "learning_progress_closed"
    )
    assert details["state"] == "completed"
    listed = (await api.get(f"/v1/students/{w['s']}/learning-progress", headers=LP)).json()
    assert (listed[0]["next_lesson"], listed[0]["state"]) == (3, "completed")
    await assert_money_consistent(db)


async def test_a_pair_is_all_or_nothing_and_checks_each_teacher(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    w = await pair_world(api)
    p = await progress(api, w["s"])
    zh, en = w["zh_slots"], w["en_slots"]
    url = "/v1/advanced-classes"

    def pair(chinese: int, foreign: int, **over: Any) -> dict[str, Any]:
        return {
            "student_id": w["s"],
            "learning_progress_id": p["id"],
            "chinese_timeslot_id": chinese,
            "foreign_timeslot_id": foreign,
            **over,
        }

    details = await refused(api, db, url, pair(en[0], zh[0]), CC, 422, "teacher_kind_mismatch")
    assert (details["expected"], details["kind"]) == ("chinese", "foreign")
    await refused(api, db, url, pair(zh[0], zh[1]), CC, 422, "teacher_kind_mismatch")
    await refused(api, db, url, pair(zh[0], zh[0]), CC, 422, "same_timeslot")
    # A foreign teacher who does not teach advanced.
    await refused(api, db, url, pair(zh[0], w["en_major_slot"]), CC, 422, "course_type_not_taught")
    await refused(api, db, url, pair(zh[0], 999999), CC, 404, "timeslot_not_found")
    await refused(
        api,
        db,
        url,
        pair(zh[0], en[0], learning_progress_id=999999),
        CC,
        404,
        "learning_progress_not_found",
    )
    # Someone else's progress is not this student's.
    other = await student(api, credits={"advanced": 2})
    theirs = await progress(api, other)
    await refused(
        api,
        db,
        url,
        pair(zh[0], en[0], learning_progress_id=theirs["id"]),
        CC,
        404,
        "learning_progress_not_found",
    )
    # The foreign slot is taken: nothing is booked, the progress stays at lesson 1.
    assert (await book(api, other, en[0], course_type="advanced")).status_code == 201
    await refused(api, db, url, pair(zh[0], en[0]), CC, 409, "slot_already_booked")
    # Not enough credits for the second class: the first is not booked either.
    poor = await student(api, credits={"advanced": 1})
    poor_progress = await progress(api, poor)
    await refused(
        api,
        db,
        url,
        {**pair(zh[1], en[1]), "student_id": poor, "learning_progress_id": poor_progress["id"]},
        CC,
        409,
        "insufficient_balance",
    )
    for bad in ({"student_id": w["s"]}, {**pair(zh[1], en[1]), "payment": {"asset": "gold"}}):
        await refused(api, db, url, bad, CC, 422, "malformed_body")
    for channel in ("lp", "tmk", "fireman", "parent_h5", "teacher", "supply_demand"):
        await refused(
            api, db, url, pair(zh[1], en[1]), as_(channel, w["s"]), 403, "forbidden_channel"
        )
    r = await api.post(url, json=pair(zh[1], en[1]), headers=CC)
    assert (r.status_code, r.json()["lesson"]) == (201, 1), r.text
    await assert_money_consistent(db)


async def test_make_up_with_the_exclusive_teacher_inside_the_priority_window(
    api: httpx.AsyncClient, clock: Clock, db: Sessions
) -> None:
    """SD-4: on Monday 07:50 Shanghai, next week's slots of an exclusive teacher are kept from
    other students, but the LP books the make-up for the teacher's own student."""
    clock.now = T0 - timedelta(minutes=10)
    e = await teacher(api)
    someone = await teacher(api)
    mine = await student(api, credits={"major": 2})
    other = await student(api, credits={"major": 2})
    r = await api.put(
        f"/v1/students/{mine}/exclusive-teacher",
        json={"teacher_id": e, "wishes": [{"weekday": "tuesday", "start": "19:00"}]},
        headers=LP,
    )
    assert r.status_code == 200, r.text
    kept, spare = await open_slots(api, e, T0 + 8 * DAY, T0 + 9 * DAY)
    [elsewhere] = await open_slots(api, someone, T0 + 8 * DAY)
    assert (await book(api, other, kept)).json()["code"] == "slot_reserved"

    url = f"/v1/students/{mine}/exclusive-make-up"
    details = await refused(
        api, db, url, {"timeslot_id": elsewhere}, LP, 409, "not_exclusive_teachers_slot"
    )
    assert (details["teacher_id"], details["exclusive_teacher_id"]) == (someone, e)
    await refused(
        api,
        db,
        f"/v1/students/{other}/exclusive-make-up",
        {"timeslot_id": kept},
        LP,
        409,
        "no_exclusive_teacher",
    )
    await refused(
        api,
        db,
        "/v1/students/999999/exclusive-make-up",
        {"timeslot_id": kept},
        LP,
        404,
        "student_not_found",
    )
    await refused(api, db, url, {"timeslot_id": 999999}, LP, 404, "timeslot_not_found")
    for bad in ({}, {"timeslot_id": kept, "course_type": "golf"}, {"timeslot_id": "x"}):
        await refused(api, db, url, bad, LP, 422, "malformed_body")
    for channel in ("cc", "fireman", "parent_h5", "supply_demand", "teacher"):
        await refused(
            api, db, url, {"timeslot_id": kept}, as_(channel, mine), 403, "forbidden_channel"
        )

    r = await api.post(url, json={"timeslot_id": kept, "reason": "missed Tuesday"}, headers=LP)
    assert r.status_code == 201, r.text
    assert (r.json()["teacher_id"], r.json()["state"], r.json()["channel"]) == (e, "booked", "lp")
    again = await refused(api, db, url, {"timeslot_id": kept}, LP, 409, "slot_already_booked")
    assert again["timeslot_id"] == kept
    trail = (await api.get(f"/v1/classes/{r.json()['id']}/audit", headers=as_("fireman"))).json()
    assert [event["action"] for event in trail] == ["booked", "make_up"]
    assert trail[1]["details"]["reason"] == "missed Tuesday"
    assert (await balances(api, mine))["credits"] == {"major": 1}
    # The exclusive teacher's other slot is still kept from others until 08:30.
    assert (await book(api, other, spare)).json()["code"] == "slot_reserved"
    await assert_money_consistent(db)
