"""Starting a course (H5-6, LP-5) and the special classes that wait for it (H5-3); the exclusive
teacher and priority window as a parent reads and uses them (H5-7, H5-8, SD-2), and the
availability that leaves out the slots a student cannot book; teachers opening a week pattern
in their own time zone across daylight-saving changes (TCH-1).

covers: H5-6, LP-5, H5-3, H5-7, H5-8, SD-2, TCH-1
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from domain.channels import Actor, Channel
from domain.payment import Payment
from domain.rules import BookingRules
from domain.words import CourseType
from store import classes
from store.db import Sessions
from tests.conftest import T0, Clock
from tests.helpers import FIREMAN, LP, as_, assert_money_consistent, book, open_slots, snapshot
from tests.helpers import student as new_student
from tests.helpers import teacher as new_teacher

DAY = timedelta(days=1)
H5 = "parent_h5"


async def start(api: httpx.AsyncClient, s: int, course_type: str, **headers: str) -> httpx.Response:
    return await api.post(
        f"/v1/students/{s}/courses",
        json={"course_type": course_type},
        headers=headers or as_(H5, s),
    )


async def test_special_classes_wait_for_the_special_course(
    api: httpx.AsyncClient, db: Sessions, clock: Clock
) -> None:
    t = await new_teacher(api, course_types=("major", "special"))
    s = await new_student(api, credits={"special": 3, "major": 1})
    slots = await open_slots(api, t, T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY)

    before = await snapshot(db)
    # The one-statement path refuses, writing nothing; the route answers the step path's code.
    fast = await classes.book_class_at_once(
        db,
        student_id=s,
        timeslot_id=slots[0],
        course_type=CourseType.special,
        payment=Payment(),
        lesson=None,
        actor=Actor(channel=Channel.lp, id="lp-1"),
        now=clock.now,
        rules=BookingRules(),
    )
    assert fast is None
    r = await book(api, s, slots[0], course_type="special")
    assert (r.status_code, r.json()["code"]) == (409, "course_not_started"), r.text
    assert r.json()["details"] == {"student_id": s, "course_type": "special"}
    r = await api.post(
        "/v1/class-requests",
        json={
            "student_id": s,
            "teacher_id": t,
            "start_at": (T0 + 4 * DAY).isoformat(),
            "course_type": "special",
        },
        headers=as_(H5, s),
    )
    assert (r.status_code, r.json()["code"]) == (409, "course_not_started"), r.text
    assert await snapshot(db) == before
    assert (await book(api, s, slots[2], course_type="major")).status_code == 201  # major: no wait

    r = await start(api, s, "special")
    assert r.status_code == 201, r.text
    assert r.json() | {"id": 0, "created_at": 0, "updated_at": 0} == {
        "id": 0,
        "student_id": s,
        "course": "special",
        "next_lesson": 1,
        "lessons": None,
        "state": "active",
        "channel": H5,
        "actor_id": str(s),
        "created_at": 0,
        "updated_at": 0,
    }
    again = await start(api, s, "special", **LP)
    assert (again.status_code, again.json()["code"]) == (409, "learning_progress_exists")
    # Both paths book it now: the fast one directly, the route too.
    fast = await classes.book_class_at_once(
        db,
        student_id=s,
        timeslot_id=slots[0],
        course_type=CourseType.special,
        payment=Payment(),
        lesson=None,
        actor=Actor(channel=Channel.lp, id="lp-1"),
        now=clock.now,
        rules=BookingRules(),
    )
    assert fast is not None and fast["course_type"] == "special"
    assert (await book(api, s, slots[1], course_type="special")).status_code == 201
    r = await api.get(f"/v1/students/{s}/learning-progress", headers=as_(H5, s))
    assert [p["course"] for p in r.json()] == ["special"]
    await assert_money_consistent(db)


async def test_starting_a_course_refuses_bad_input(api: httpx.AsyncClient, db: Sessions) -> None:
    s, other = await new_student(api), await new_student(api)
    before = await snapshot(db)
    r = await start(api, other, "special", **as_(H5, s))
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_actor")
    r = await start(api, s, "special", **as_("parent_pc", s))
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_channel")
    r = await start(api, 999999, "special", **LP)
    assert (r.status_code, r.json()["code"]) == (404, "student_not_found")
    for bad in ("trial", "advanced", "", None):
        r = await start(api, s, bad, **LP)  # type: ignore[arg-type]
        assert r.status_code == 422, (bad, r.text)
    assert await snapshot(db) == before
    r = await start(api, s, "major", **LP)
    assert (r.status_code, r.json()["course"]) == (201, "major")


async def test_a_parent_reads_and_books_inside_the_exclusive_window(
    api: httpx.AsyncClient, db: Sessions, clock: Clock
) -> None:
    """H5-7, H5-8: Monday 07:50 Beijing; next week's slots of the exclusive teacher are kept
    until 08:30 for their own students: the parent reads that, books one; another parent cannot
    and does not see them in availability (SD-2)."""
    clock.now = T0 - timedelta(minutes=10)  # Monday 2030-01-07 07:50 Asia/Shanghai
    e = await new_teacher(api)
    mine = await new_student(api, credits={"major": 2})
    other = await new_student(api, credits={"major": 2})
    r = await api.get(f"/v1/students/{mine}/exclusive-teacher", headers=as_(H5, mine))
    assert r.status_code == 200, r.text
    assert r.json()["teacher_id"] is None and r.json()["rule"] is None
    r = await api.put(
        f"/v1/students/{mine}/exclusive-teacher",
        json={"teacher_id": e, "wishes": [{"weekday": "tuesday", "start": "19:00"}]},
        headers=LP,
    )
    assert r.status_code == 200, r.text
    r = await api.get(f"/v1/students/{mine}/exclusive-teacher", headers=as_(H5, mine))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["student_id"], body["teacher_id"]) == (mine, e)
    assert body["rule"]["wishes"] == [{"weekday": "tuesday", "start": "19:00:00"}]
    assert body["windows"] == [
        {"week": "2030-01-14", "open": True, "until": "2030-01-07T00:30:00Z"},
        {"week": "2030-01-21", "open": True, "until": "2030-01-14T00:30:00Z"},
    ]
    next_week = datetime(2030, 1, 16, 11, tzinfo=UTC)  # Wednesday 19:00 Beijing
    kept, kept_too = await open_slots(api, e, next_week, next_week + DAY)
    this_week = (await open_slots(api, e, T0 + DAY))[0]

    async def listed(student: int | None, headers: dict[str, str]) -> list[int]:
        params: dict[str, Any] = {
            "start_from": T0.isoformat(),
            "start_to": (T0 + 14 * DAY).isoformat(),
            "teacher_id": e,
        }
        if student is not None:
            params["student_id"] = student
        r = await api.get("/v1/timeslots", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return [slot["id"] for slot in r.json()]

    assert await listed(mine, as_(H5, mine)) == [this_week, kept, kept_too]
    assert await listed(other, as_(H5, other)) == [this_week]
    assert await listed(other, LP) == [this_week]
    assert await listed(None, as_(H5, other)) == [this_week]  # a parent: left out
    assert await listed(None, LP) == [this_week, kept, kept_too]  # staff: shown
    assert await listed(None, as_("teacher", e)) == [this_week, kept, kept_too]

    before = await snapshot(db)
    r = await book(api, other, kept)
    assert (r.status_code, r.json()["code"]) == (409, "slot_reserved")
    assert await snapshot(db) == before
    r = await book(api, mine, kept)  # the parent, on parent_h5, inside the window
    assert r.status_code == 201, r.text

    clock.now = T0 + timedelta(minutes=31)  # 08:31: the window for next week is over
    r = await api.get(f"/v1/students/{other}/exclusive-teacher", headers=as_(H5, other))
    assert r.json()["teacher_id"] is None
    assert r.json()["windows"][0] == {
        "week": "2030-01-14",
        "open": False,
        "until": "2030-01-07T00:30:00Z",
    }
    # Until 12:03 the dino-home window (SD-3) still keeps next week's slots from a student
    # with no finished class this week or last; then anyone books them.
    r = await book(api, other, kept_too)
    assert (r.status_code, r.json()["code"]) == (409, "dino_home_priority")
    clock.now = T0 + timedelta(hours=4, minutes=4)
    assert await listed(other, as_(H5, other)) == [this_week, kept_too]
    assert (await book(api, other, kept_too)).status_code == 201
    await assert_money_consistent(db)


async def test_reading_the_exclusive_teacher_refuses_bad_input(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    s, other = await new_student(api), await new_student(api)
    r = await api.get(f"/v1/students/{other}/exclusive-teacher", headers=as_(H5, s))
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_actor")
    r = await api.get(f"/v1/students/{s}/exclusive-teacher", headers=as_("teacher", 1))
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_channel")
    r = await api.get("/v1/students/999999/exclusive-teacher", headers=FIREMAN)
    assert (r.status_code, r.json()["code"]) == (404, "student_not_found")
    r = await api.get("/v1/students/x/exclusive-teacher", headers=FIREMAN)
    assert r.status_code == 422


async def register(api: httpx.AsyncClient, zone: str) -> int:
    r = await api.post(
        "/v1/teachers",
        json={"name": "T", "kind": "foreign", "course_types": ["major"], "time_zone": zone},
        headers=FIREMAN,
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def pattern(api: httpx.AsyncClient, t: int, body: dict[str, Any]) -> httpx.Response:
    return await api.post(
        f"/v1/teachers/{t}/timeslots/week-pattern", json=body, headers=as_("teacher", t)
    )


MONDAYS_19 = {
    "first_week": "2030-10-21",
    "weeks": 3,
    "times": [{"weekday": "monday", "start": "19:00"}],
}


async def test_a_week_pattern_follows_the_teachers_zone_across_the_autumn_change(
    api: httpx.AsyncClient, clock: Clock
) -> None:
    """America/New_York leaves summer time on 3 November 2030, Europe/London on 27 October."""
    clock.now = datetime(2030, 10, 14, tzinfo=UTC)
    ny = await register(api, "America/New_York")
    r = await pattern(api, ny, MONDAYS_19)
    assert r.status_code == 201, r.text
    assert r.json()["time_zone"] == "America/New_York"
    assert [(s["start_at"], s["local_start"]) for s in r.json()["opened"]] == [
        ("2030-10-21T23:00:00Z", "2030-10-21T19:00:00-04:00"),
        ("2030-10-28T23:00:00Z", "2030-10-28T19:00:00-04:00"),
        ("2030-11-05T00:00:00Z", "2030-11-04T19:00:00-05:00"),  # Tuesday 00:00 UTC
    ]
    assert r.json()["skipped"] == []
    again = await pattern(api, ny, MONDAYS_19)
    assert again.json()["opened"] == []
    assert [s["reason"] for s in again.json()["skipped"]] == ["already_open"] * 3

    london = await register(api, "Europe/London")
    r = await pattern(api, london, MONDAYS_19)
    assert [s["start_at"] for s in r.json()["opened"]] == [
        "2030-10-21T18:00:00Z",
        "2030-10-28T19:00:00Z",
        "2030-11-04T19:00:00Z",
    ]
    # A UTC teacher names the zone of the times explicitly.
    utc = await register(api, "UTC")
    r = await pattern(api, utc, MONDAYS_19 | {"time_zone": "Europe/London", "weeks": 1})
    assert r.status_code == 201, r.text
    assert (r.json()["time_zone"], r.json()["opened"][0]["start_at"]) == (
        "Europe/London",
        "2030-10-21T18:00:00Z",
    )


async def test_a_week_pattern_skips_what_it_cannot_open(
    api: httpx.AsyncClient, clock: Clock
) -> None:
    """Spring: America/New_York skips 02:00-03:00 on 9 March 2031; past starts and starts more
    than 8 weeks ahead are skipped with their reason."""
    clock.now = datetime(2031, 3, 4, tzinfo=UTC)  # Tuesday
    ny = await register(api, "America/New_York")
    r = await pattern(
        api,
        ny,
        {
            "first_week": "2031-03-03",
            "weeks": 2,
            "times": [
                {"weekday": "monday", "start": "18:00"},
                {"weekday": "sunday", "start": "02:30"},
            ],
        },
    )
    assert r.status_code == 201, r.text
    assert [(s["start_at"], s["local_start"]) for s in r.json()["opened"]] == [
        ("2031-03-10T22:00:00Z", "2031-03-10T18:00:00-04:00"),
        ("2031-03-16T06:30:00Z", "2031-03-16T02:30:00-04:00"),
    ]
    assert [(s["start_at"], s["reason"]) for s in r.json()["skipped"]] == [
        ("2031-03-03T23:00:00Z", "in_past"),
        (None, "no_such_local_time"),
    ]
    r = await pattern(
        api,
        ny,
        {
            "first_week": "2031-04-21",
            "weeks": 2,
            "times": [{"weekday": "sunday", "start": "12:00"}],
        },
    )
    assert [(s["start_at"], s["reason"]) for s in r.json()["skipped"]] == [
        ("2031-05-04T16:00:00Z", "outside_booking_window")
    ]
    assert len(r.json()["opened"]) == 1


async def test_a_week_pattern_refuses_bad_input(
    api: httpx.AsyncClient, db: Sessions, clock: Clock
) -> None:
    t = await register(api, "Asia/Kathmandu")  # UTC+05:45: no local :00/:30 is on the grid
    u = await register(api, "UTC")
    before = await snapshot(db)
    for body, code in (
        (MONDAYS_19 | {"time_zone": "Mars/Olympus"}, 422),
        (MONDAYS_19 | {"first_week": "2030-10-22"}, 422),  # a Tuesday
        (MONDAYS_19 | {"weeks": 0}, 422),
        (MONDAYS_19 | {"times": [{"weekday": "funday", "start": "19:00"}]}, 422),
        (MONDAYS_19 | {"times": [{"weekday": "monday", "start": "19:00+08:00"}]}, 422),
        (MONDAYS_19 | {"times": []}, 422),
    ):
        r = await pattern(api, u, body)
        assert r.status_code == code, (body, r.text)
    clock.now = datetime(2030, 10, 14, tzinfo=UTC)
    r = await pattern(api, t, MONDAYS_19)
    assert (r.status_code, r.json()["code"]) == (422, "off_grid")
    r = await api.post(
        f"/v1/teachers/{u}/timeslots/week-pattern", json=MONDAYS_19, headers=as_("teacher", t)
    )
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_actor")
    r = await api.post(
        "/v1/teachers/999999/timeslots/week-pattern", json=MONDAYS_19, headers=FIREMAN
    )
    assert (r.status_code, r.json()["code"]) == (404, "teacher_not_found")
    r = await api.post(
        f"/v1/teachers/{u}/timeslots/week-pattern", json=MONDAYS_19, headers=as_(H5, 1)
    )
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_channel")
    assert await snapshot(db) == before
