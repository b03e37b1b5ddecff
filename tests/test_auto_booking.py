"""Weekly booking runs (auto-booking, exclusive teachers) and the priority window.

covers: LP-1, SD-6, SD-1, SD-2, H5-7, H5-8
"""

import asyncio
import hashlib
from collections import Counter
from datetime import date, time, timedelta
from typing import Any

import httpx
from sqlalchemy import select, text

from domain.auto_booking import BookChunk, RunKind, RunRequest
from domain.channels import Actor, Channel
from domain.payment import Payment
from domain.rules import BookingRules
from domain.weekly import Weekday, at, next_week
from domain.words import CourseType
from store import auto_booking, classes
from store.db import Sessions
from store.models import BookingRunStudent
from tests.conftest import T0, Clock, Stack
from tests.helpers import (
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

ZONE = "Asia/Shanghai"
SD = as_("supply_demand", "sd-1")


def local(week: date, day: str, hh: int, mm: int = 0) -> Any:
    return at(week, Weekday(day).number, time(hh, mm), ZONE)


async def rule(
    api: httpx.AsyncClient, s: int, wishes: list[tuple[str, str]], teachers: list[int], anyone: bool
) -> None:
    body = {
        "wishes": [{"weekday": d, "start": t} for d, t in wishes],
        "teacher_ids": teachers,
        "any_teacher": anyone,
    }
    r = await api.put(f"/v1/students/{s}/auto-booking-rule", json=body, headers=LP)
    assert r.status_code == 200, r.text


async def run_and_wait(stack: Stack, **body: Any) -> dict[str, Any]:
    r = await stack.api.post("/v1/booking-runs", json=body, headers=SD)
    assert r.status_code == 201, r.text
    run = r.json()
    handle = stack.env.client.get_workflow_handle(run["flow_id"])
    await handle.result()
    done = await stack.api.get(f"/v1/booking-runs/{run['id']}", headers=LP)
    assert done.json()["state"] == "done"
    return dict(done.json())


async def results(api: httpx.AsyncClient, run_id: int) -> dict[tuple[int, int], dict[str, Any]]:
    r = await api.get(f"/v1/booking-runs/{run_id}/results", headers=LP)
    assert r.status_code == 200, r.text
    return {(x["student_id"], x["position"]): x for x in r.json()}


async def test_auto_booking_follows_preferences_fallback_and_balances(
    stack: Stack, db: Sessions
) -> None:
    api = stack.api
    week = next_week(await stack.now(), ZONE)
    a, b, c = [await teacher(api) for _ in range(3)]
    await open_slots(api, a, local(week, "tuesday", 19))
    await open_slots(api, b, local(week, "tuesday", 19))
    await open_slots(
        api,
        c,
        local(week, "tuesday", 20),
        local(week, "tuesday", 21),
        local(week, "wednesday", 19),
        local(week, "thursday", 19),
        local(week, "friday", 19),
    )
    [fri_a] = await open_slots(api, a, local(week, "friday", 19))
    s1 = await student(api, credits={"major": 5})  # preference order: B before A
    await rule(api, s1, [("tuesday", "19:00")], [b, a], False)
    s2 = await student(api, credits={"major": 5})  # A not free: any teacher will do -> C
    await rule(api, s2, [("tuesday", "20:00")], [a], True)
    s3 = await student(api, credits={"major": 5})  # A not free, only A: not booked
    await rule(api, s3, [("tuesday", "21:00")], [a], False)
    s4 = await student(api, credits={"major": 1})  # one credit for two wishes
    await rule(api, s4, [("wednesday", "19:00"), ("thursday", "19:00")], [], True)
    s5 = await student(api, credits={"major": 5})  # already busy at the wished time
    assert (await book(api, s5, fri_a)).status_code == 201
    await rule(api, s5, [("friday", "19:00")], [], True)

    run = await run_and_wait(stack)
    assert (run["students"], run["rounds"], run["booked"], run["failed"]) == (5, 2, 3, 3)
    found = await results(api, run["id"])
    assert found[(s1, 1)]["teacher_id"] == b and found[(s1, 1)]["class_id"]
    assert found[(s2, 1)]["teacher_id"] == c
    assert (found[(s3, 1)]["class_id"], found[(s3, 1)]["reason"]) == (
        None,
        "preferred_teachers_busy",
    )
    assert found[(s4, 1)]["teacher_id"] == c
    assert found[(s4, 2)]["reason"] == "insufficient_balance"
    assert found[(s5, 1)]["reason"] == "student_busy"
    assert (await balances(api, s4))["credits"] == {"major": 0}
    assert (await balances(api, s1))["credits"] == {"major": 4}
    one = await api.get(f"/v1/booking-runs/{run['id']}/results?student_id={s1}", headers=LP)
    assert [x["student_id"] for x in one.json()] == [s1]
    # Progress as the Web UI shows it.
    state = await stack.env.client.get_workflow_handle(run["flow_id"]).query("state")
    assert (state["booked"], state["failed"]) == (3, 3)
    await assert_money_consistent(db)


async def test_runs_are_fair_first_wishes_first_then_the_weekly_order(
    stack: Stack, db: Sessions
) -> None:
    """Ten students want Saturday 19:00 and four teachers are free: the first four in the
    run's order (md5 of week and student id) get them; a second wish never beats a first."""
    api = stack.api
    week = next_week(await stack.now(), ZONE)
    teachers = [await teacher(api) for _ in range(4)]
    for t in teachers:
        await open_slots(api, t, local(week, "saturday", 19))
    wanting = []
    for _ in range(10):
        s = await student(api, credits={"major": 3})
        await rule(api, s, [("saturday", "19:00")], [], True)
        wanting.append(s)
    # Their second wish is the last free Sunday slot; another student's first wish is the same.
    [sunday] = await open_slots(api, teachers[0], local(week, "sunday", 19))
    first_wisher = await student(api, credits={"major": 1})
    await rule(api, first_wisher, [("sunday", "19:00")], [], True)
    second = wanting[0]
    await rule(api, second, [("saturday", "19:00"), ("sunday", "19:00")], [], True)

    run = await run_and_wait(stack)
    found = await results(api, run["id"])
    order = sorted(wanting, key=lambda s: hashlib.md5(f"{week}:{s}".encode()).hexdigest())
    async with db() as session:
        fixed = list(
            await session.scalars(
                select(BookingRunStudent.student_id)
                .where(BookingRunStudent.run_id == run["id"])
                .order_by(BookingRunStudent.position)
            )
        )
    assert [s for s in fixed if s in wanting] == order
    booked = {s for s in wanting if found[(s, 1)]["class_id"]}
    assert booked == set(order[:4])
    assert found[(first_wisher, 1)]["class_id"] is not None
    assert found[(second, 2)]["reason"] == "no_free_teacher"
    assert sunday
    await assert_money_consistent(db)


async def test_any_teacher_wishes_spread_across_teachers(stack: Stack, db: Sessions) -> None:
    """Six any-teacher students, each at a different Saturday time, and three teachers free at
    all six: each wish takes the teacher with the fewest classes that week (then the lowest id),
    so each teacher gets two, not the first teacher's slots first. A teacher who already has a
    class that week gets fewer."""
    api = stack.api
    week = next_week(await stack.now(), ZONE)
    times = [(19 + n // 2, 30 * (n % 2)) for n in range(6)]
    a, b, c = [await teacher(api) for _ in range(3)]
    for t in (a, b, c):
        await open_slots(api, t, *(local(week, "saturday", hh, mm) for hh, mm in times))
    wanting = []
    for hh, mm in times:
        s = await student(api, credits={"major": 1})
        await rule(api, s, [("saturday", f"{hh:02}:{mm:02}")], [], True)
        wanting.append(s)

    run = await run_and_wait(stack)
    found = await results(api, run["id"])
    assert (run["booked"], run["failed"]) == (6, 0)
    per_teacher = Counter(found[(s, 1)]["teacher_id"] for s in wanting)
    assert per_teacher == {a: 2, b: 2, c: 2}

    # Another run, one more wish at a time all three are free: A now has 3 classes (one booked
    # by hand), B and C 2, so B (the lower id of the two) gets it; the six are busy already.
    [sunday_a] = await open_slots(api, a, local(week, "sunday", 10))
    assert (await book(api, await student(api, credits={"major": 1}), sunday_a)).status_code == 201
    for t in (a, b, c):
        await open_slots(api, t, local(week, "sunday", 19))
    late = await student(api, credits={"major": 1})
    await rule(api, late, [("sunday", "19:00")], [], True)
    run = await run_and_wait(stack)
    found = await results(api, run["id"])
    assert found[(late, 1)]["teacher_id"] == b
    assert {found[(s, 1)]["reason"] for s in wanting} == {"student_busy"}
    await assert_money_consistent(db)


async def test_concurrent_manual_bookings_during_a_run_never_double_book(db: Sessions) -> None:
    """A run's chunks and parents' bookings race for the same slots and the same credits:
    every slot has at most one class, no balance goes negative, the ledger is exact."""
    rules = BookingRules()
    lp = Actor(channel=Channel.lp, id="lp")
    now = T0 + timedelta(days=2)
    week = next_week(now, ZONE)
    async with db.begin() as session:
        await session.execute(
            text(
                """
                INSERT INTO teachers (id, name, kind, time_zone, course_types, created_at)
                SELECT g, 'T', 'foreign', 'UTC', ARRAY['major'], :now
                FROM generate_series(9001, 9010) g;
                """
            ),
            {"now": now},
        )
        starts = [local(week, "monday", 19) + timedelta(minutes=30 * i) for i in range(4)]
        for t in range(9001, 9011):
            for s_at in starts:
                await session.execute(
                    text(
                        """INSERT INTO timeslots (teacher_id, start_at, state, direction,
                           created_at, updated_at) VALUES (:t, :s, 'open', 'general', :n, :n)"""
                    ),
                    {"t": t, "s": s_at, "n": now},
                )
        await session.execute(
            text(
                """
                INSERT INTO students (id, name, level, time_zone, created_at)
                SELECT g, 'S', 1, 'Asia/Shanghai', :now FROM generate_series(9001, 9060) g
                """
            ),
            {"now": now},
        )
        await session.execute(
            text(
                """
                INSERT INTO accounts (student_id, asset, key, balance)
                SELECT g, 'credit', 'major', 2 FROM generate_series(9001, 9060) g;
                INSERT INTO ledger_entries (student_id, asset, key, delta, reason, channel,
                                            actor_id, occurred_at)
                SELECT g, 'credit', 'major', 2, 'grant', 'lp', 'lp', now()
                FROM generate_series(9001, 9060) g;
                """.split(";")[0]
            ),
            {},
        )
        await session.execute(
            text(
                """INSERT INTO ledger_entries (student_id, asset, key, delta, reason, channel,
                   actor_id, occurred_at)
                   SELECT g, 'credit', 'major', 2, 'grant', 'lp', 'lp', :now
                   FROM generate_series(9001, 9060) g"""
            ),
            {"now": now},
        )
    for s in range(9001, 9061):
        async with db.begin() as session:
            wishes = [
                auto_booking.Wish(weekday=Weekday.monday, start=time(19, 0)),
                auto_booking.Wish(weekday=Weekday.monday, start=time(19, 30)),
                auto_booking.Wish(weekday=Weekday.monday, start=time(20, 0)),
            ]
            await auto_booking.save_rule(
                session,
                student_id=s,
                kind="auto",
                wishes=wishes,
                teacher_ids=[],
                any_teacher=True,
                course_type=CourseType.major,
                active=True,
                actor=lp,
                now=now,
            )
    async with db.begin() as session:
        run = await auto_booking.start_run(
            session, RunRequest(kind=RunKind.auto, actor=lp), flow_id="t", now=now, rules=rules
        )
        slot_ids = list(
            await session.scalars(text("SELECT id FROM timeslots ORDER BY start_at, teacher_id"))
        )

    async def chunks() -> None:
        for round_ in (1, 2, 3):
            for first in range(0, run.students, 10):
                async with db.begin() as session:
                    await auto_booking.book_chunk(
                        session,
                        BookChunk(
                            run_id=run.id, round=round_, first=first, size=10, actor=lp, now=now
                        ),
                        rules,
                    )

    async def manual(student_id: int, slot_id: int) -> None:
        try:
            async with db.begin() as session:
                await classes.book_class(
                    session,
                    student_id=student_id,
                    timeslot_id=slot_id,
                    course_type=CourseType.major,
                    payment=Payment(),
                    lesson=None,
                    actor=lp,
                    now=now,
                    rules=rules,
                )
        except Exception as exc:  # refusals and lost races are expected
            assert getattr(exc, "code", None) or "conflict" in str(exc).lower(), exc

    races = [manual(9001 + (i * 7) % 60, slot_ids[i % len(slot_ids)]) for i in range(60)]
    await asyncio.gather(chunks(), *races)
    async with db() as session:
        double = await session.scalar(
            text(
                """SELECT count(*) FROM (SELECT timeslot_id FROM classes WHERE state <> 'cancelled'
                   GROUP BY timeslot_id HAVING count(*) > 1) x"""
            )
        )
        orphan = await session.scalar(
            text(
                """SELECT count(*) FROM timeslots t WHERE t.state = 'booked' AND NOT EXISTS
                   (SELECT 1 FROM classes c
                    WHERE c.timeslot_id = t.id AND c.state <> 'cancelled')"""
            )
        )
        over = await session.scalar(
            text(
                """SELECT count(*) FROM (SELECT student_id FROM classes WHERE state <> 'cancelled'
                   GROUP BY student_id HAVING count(*) > 2) x"""
            )
        )
    assert (double, orphan, over) == (0, 0, 0)
    await assert_money_consistent(db)


async def test_exclusive_teachers_keep_next_weeks_slots_until_0830(
    api: httpx.AsyncClient, clock: Clock, db: Sessions
) -> None:
    """SD-2: on Monday before 08:30 Asia/Shanghai, the exclusive teacher's next-week slots go
    only to their own exclusive students; from 08:30, to anyone."""
    clock.now = T0 - timedelta(minutes=10)  # Monday 07:50 in Shanghai
    e = await teacher(api)
    mine = await student(api, credits={"major": 2})
    other = await student(api, credits={"major": 2})
    r = await api.put(
        f"/v1/students/{mine}/exclusive-teacher",
        json={"teacher_id": e, "wishes": [{"weekday": "tuesday", "start": "19:00"}]},
        headers=LP,
    )
    assert r.status_code == 200, r.text
    week = next_week(clock.now, ZONE)
    s1, s2 = await open_slots(api, e, local(week, "wednesday", 19), local(week, "thursday", 19))
    this_week = await open_slots(api, e, T0 + timedelta(hours=30))
    before = await snapshot(db)
    r = await book(api, other, s1)
    assert (r.status_code, r.json()["code"]) == (409, "slot_reserved")
    assert await snapshot(db) == before
    assert (await book(api, other, this_week[0])).status_code == 201  # this week: anyone
    assert (await book(api, mine, s1)).status_code == 201  # their own exclusive student
    clock.now = T0 + timedelta(minutes=31)  # 08:31
    # The dino-home window (SD-3) keeps next week's slots from `other` (no finished class this
    # week or last) until 12:03; then anyone books them.
    r = await book(api, other, s2)
    assert (r.status_code, r.json()["code"]) == (409, "dino_home_priority")
    clock.now = T0 + timedelta(hours=4, minutes=4)  # 12:04
    assert (await book(api, other, s2)).status_code == 201
    await assert_money_consistent(db)


async def test_exclusive_run_books_the_weekly_pattern_with_the_teacher(
    stack: Stack, db: Sessions
) -> None:
    """SD-1: the exclusive run books each pattern time with the student's exclusive teacher;
    Level 7 students go in their own run."""
    api = stack.api
    week = next_week(await stack.now(), ZONE)
    e = await teacher(api)
    s = await student(api, credits={"major": 3})
    r = await api.put(
        f"/v1/students/{s}/exclusive-teacher",
        json={
            "teacher_id": e,
            "wishes": [
                {"weekday": "tuesday", "start": "19:00"},
                {"weekday": "thursday", "start": "19:00"},
            ],
        },
        headers=LP,
    )
    assert r.status_code == 200, r.text
    await open_slots(api, e, local(week, "tuesday", 19))
    run = await run_and_wait(stack, kind="exclusive")
    assert (run["students"], run["booked"], run["failed"]) == (1, 1, 1)
    found = await results(api, run["id"])
    assert found[(s, 1)]["teacher_id"] == e
    assert found[(s, 2)]["reason"] == "preferred_teachers_busy"
    l7 = await run_and_wait(stack, kind="exclusive_l7")
    assert l7["students"] == 0
    # Bad input: refused, nothing changed.
    before = await snapshot(db)
    for body, code in (
        ({"kind": "auto", "student_id": s}, "auto_rule_not_found"),
        ({"kind": "auto", "week": str(week + timedelta(days=1))}, "bad_rule"),
        ({"kind": "nonsense"}, "malformed_body"),
    ):
        r = await api.post("/v1/booking-runs", json=body, headers=SD)
        assert 400 <= r.status_code < 500 and r.json()["code"] == code, r.text
    r = await api.put(
        f"/v1/students/{s}/auto-booking-rule",
        json={"wishes": [{"weekday": "monday", "start": "19:10"}]},
        headers=LP,
    )
    assert (r.status_code, r.json()["code"]) == (422, "bad_rule")
    assert await snapshot(db) == before
    await assert_money_consistent(db)


async def test_next_weeks_auto_booking_waits_for_the_dino_home_window(
    stack: Stack, db: Sessions
) -> None:
    """SD-3, SD-6: from Monday 00:00 until 12:03 (Asia/Shanghai) next week's general slots are
    kept for dino-home students, so a hand-started auto-booking of next week is refused until
    the window closes (the Schedule starts it at 12:03); exclusive-teacher runs are not."""
    api = stack.api
    now = await stack.now()
    monday = at(next_week(now, ZONE), 0, time(9), ZONE)  # next Monday, 09:00 in Shanghai
    await stack.env.sleep(monday - now)
    week = next_week(await stack.now(), ZONE)
    t = await teacher(api)
    await open_slots(api, t, local(week, "tuesday", 19))
    s = await student(api, credits={"major": 2})
    await rule(api, s, [("tuesday", "19:00")], [], True)
    before = await snapshot(db)
    r = await api.post("/v1/booking-runs", json={"kind": "auto"}, headers=SD)
    assert (r.status_code, r.json()["code"]) == (409, "dino_home_window_open"), r.text
    assert (
        r.json()["details"]["window_closes_at"]
        == local(week - timedelta(weeks=1), "monday", 12, 3).isoformat()
    )
    assert await snapshot(db) == before
    later = await api.post(
        "/v1/booking-runs",
        json={"kind": "auto", "week": str(week + timedelta(weeks=1))},
        headers=SD,
    )
    assert later.status_code == 201, later.text  # the week after next is not kept
    await stack.env.sleep(timedelta(hours=3, minutes=3))  # 12:03
    run = await run_and_wait(stack)
    assert (run["students"], run["booked"]) == (1, 1)
    await assert_money_consistent(db)


async def test_a_rule_of_course_type_open_books_no_one_on_one_class(db: Sessions) -> None:
    """LP-1, SD-6: an open class is sold by the seat, so saving a rule of course type open is
    refused (test_validation) and a run that meets one (saved when that was accepted) books
    nothing for it: the wish's result says open_class_by_seat, the slot stays open and the
    credits stay."""
    rules = BookingRules()
    lp = Actor(channel=Channel.lp, id="lp")
    now = T0 + timedelta(days=2)
    week = next_week(now, ZONE)
    async with db.begin() as session:
        for sql in (
            "INSERT INTO teachers (id, name, kind, time_zone, course_types, created_at)"
            " VALUES (9101, 'T', 'foreign', 'UTC', ARRAY['major', 'open'], :now)",
            "INSERT INTO timeslots (teacher_id, start_at, state, direction, created_at,"
            " updated_at) VALUES (9101, :start, 'open', 'general', :now, :now)",
            "INSERT INTO students (id, name, level, time_zone, created_at)"
            " VALUES (9101, 'S', 1, 'Asia/Shanghai', :now)",
            "INSERT INTO accounts (student_id, asset, key, balance)"
            " VALUES (9101, 'credit', 'open', 2)",
            "INSERT INTO ledger_entries (student_id, asset, key, delta, reason, channel, actor_id,"
            " occurred_at) VALUES (9101, 'credit', 'open', 2, 'grant', 'lp', 'lp', :now)",
            "INSERT INTO booking_rules (student_id, kind, teacher_ids, any_teacher, course_type,"
            " active, channel, actor_id, updated_at)"
            " VALUES (9101, 'auto', ARRAY[9101]::bigint[], true, 'open', true, 'lp', 'lp', :now)",
            "INSERT INTO booking_wishes (student_id, kind, position, weekday, start_time)"
            " VALUES (9101, 'auto', 1, 0, time '19:00')",
        ):
            await session.execute(text(sql), {"now": now, "start": local(week, "monday", 19)})
    async with db.begin() as session:
        run = await auto_booking.start_run(
            session, RunRequest(kind=RunKind.auto, actor=lp), flow_id="t", now=now, rules=rules
        )
        outcome = await auto_booking.book_chunk(
            session,
            BookChunk(run_id=run.id, round=1, first=0, size=10, actor=lp, now=now),
            rules,
        )
    assert (outcome.students, outcome.booked, outcome.failed) == (1, 0, 1)
    async with db() as session:
        found = (
            await session.execute(
                text(
                    """SELECT r.reason, r.class_id, t.state,
                              (SELECT count(*) FROM classes), (SELECT balance FROM accounts)
                       FROM booking_results r, timeslots t WHERE r.run_id = :run"""
                ),
                {"run": run.id},
            )
        ).one()
    assert tuple(found) == ("open_class_by_seat", None, "open", 0, 2)
    await assert_money_consistent(db)
