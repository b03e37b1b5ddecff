"""Dual-excellence contracts (双优合约) through the API, on the time-skipping server.

covers: TCH-6, SD-7, SD-4
"""

import asyncio
from datetime import date, datetime, time, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from domain.channels import Actor, Channel
from domain.contract import ContractInput, WeeklyTime
from domain.weekly import Weekday, at, next_week, week_start
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
    snapshot,
    student,
    teacher,
)
from workflows.contract import ContractWorkflow

ZONE = "Asia/Shanghai"
WEEK = timedelta(weeks=1)
DAY = timedelta(days=1)
CHINESE_AT = ("tuesday", time(18, 0))
FOREIGN_AT = ("thursday", time(19, 30))


async def pair(api: httpx.AsyncClient) -> tuple[int, int]:
    # A Chinese teacher is certified for all-round advanced only, and teaches the Chinese half
    # of a contract whatever its course type.
    chinese = await teacher(api, kind="chinese", course_types=("advanced",))
    foreign = await teacher(api, kind="foreign", course_types=("major",))
    return chinese, foreign


def proposal(s: int, chinese: int, foreign: int, first: date, **kw: Any) -> dict[str, Any]:
    return {
        "student_id": s,
        "chinese": {"teacher_id": chinese, "weekday": CHINESE_AT[0], "start": "18:00"},
        "foreign": {"teacher_id": foreign, "weekday": FOREIGN_AT[0], "start": "19:30"},
        "first_week": first.isoformat(),
        **kw,
    }


def foreign_start(week: date) -> datetime:
    return at(week, Weekday.thursday.number, FOREIGN_AT[1], ZONE)


async def answer(api: httpx.AsyncClient, contract_id: int, t: int, verb: str) -> httpx.Response:
    return await api.post(f"/v1/contracts/{contract_id}/{verb}", json={}, headers=as_("teacher", t))


async def weeks(api: httpx.AsyncClient, contract_id: int) -> dict[tuple[str, str], Any]:
    r = await api.get(f"/v1/contracts/{contract_id}", headers=LP)
    assert r.status_code == 200, r.text
    return {(w["week"], w["role"]): w for w in r.json()["weeks"]}


async def until_weeks(api: httpx.AsyncClient, contract_id: int, count: int) -> dict:
    for _ in range(200):
        found = await weeks(api, contract_id)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {len(found)} week bookings")


async def test_contract_books_two_weeks_ahead_then_weekly_until_terminated(
    stack: Stack, db: Sessions
) -> None:
    """Both agree: W1 and W2 at once; each week's Monday books the week two ahead; a week the
    foreign teacher is busy is recorded and the contract goes on; a make-up class; the LP
    terminates: future classes refunded, contract slots removed."""
    api = stack.api
    chinese, foreign = await pair(api)
    s = await student(api, credits={"major": 20})
    other = await student(api, credits={"major": 1})
    first = next_week(await stack.now(), ZONE)
    w = [first + i * WEEK for i in range(6)]
    # The foreign teacher's W3 time is taken by another student's class.
    [busy] = await open_slots(api, foreign, foreign_start(w[2]))
    assert (await book(api, other, busy)).status_code == 201

    r = await api.post("/v1/contracts", json=proposal(s, chinese, foreign, first), headers=LP)
    assert r.status_code == 201, r.text
    contract = r.json()
    cid = contract["id"]
    assert contract["state"] == "proposed"

    r = await answer(api, cid, chinese, "agree")
    assert (r.status_code, r.json()["state"], r.json()["chinese_agreed"]) == (200, "proposed", True)
    r = await answer(api, cid, foreign, "agree")
    assert (r.status_code, r.json()["state"]) == (200, "active"), r.text
    booked = await weeks(api, cid)
    assert set(booked) == {(str(x), role) for x in w[:2] for role in ("chinese", "foreign")}
    assert all(b["class_id"] and b["reason"] is None for b in booked.values())
    w1_foreign = booked[(str(w[0]), "foreign")]["start_at"]
    assert datetime.fromisoformat(w1_foreign) == foreign_start(w[0])
    assert (await balances(api, s))["credits"] == {"major": 16}

    # W1's Monday books W3, where the foreign teacher is busy; W2's Monday books W4.
    await stack.env.sleep(week_start(first, ZONE) - await stack.now() + timedelta(minutes=1))
    found = await until_weeks(api, cid, 6)
    assert found[(str(w[2]), "chinese")]["class_id"] is not None
    assert found[(str(w[2]), "foreign")]["class_id"] is None
    assert found[(str(w[2]), "foreign")]["reason"] == "teacher_busy"
    await stack.env.sleep(WEEK)
    found = await until_weeks(api, cid, 8)
    assert all(found[(str(w[3]), role)]["class_id"] for role in ("chinese", "foreign"))
    assert (await balances(api, s))["credits"] == {"major": 13}

    # SD-4: a make-up with the foreign teacher, on a contract-directed slot.
    makeup_at = foreign_start(w[3]) + DAY
    r = await api.post(
        f"/v1/contracts/{cid}/make-up",
        json={"role": "foreign", "start_at": makeup_at.isoformat()},
        headers=LP,
    )
    assert r.status_code == 201, r.text
    assert r.json()["teacher_id"] == foreign
    assert (await balances(api, s))["credits"] == {"major": 12}

    r = await api.post(f"/v1/contracts/{cid}/terminate", json={"reason": "moved"}, headers=LP)
    assert (r.status_code, r.json()["state"]) == (200, "terminated"), r.text
    now = await stack.now()
    async with db() as session:
        slots = list(
            await session.scalars(select(Timeslot).where(Timeslot.origin == f"contract-{cid}"))
        )
    assert slots and all(slot.state.value == "removed" for slot in slots if slot.start_at > now)
    # Everything ahead was refunded: W2 (already begun) keeps what has not started yet refunded.
    classes = (await api.get(f"/v1/students/{s}/classes", headers=LP)).json()
    ahead = [c for c in classes if datetime.fromisoformat(c["start_at"]) > now]
    assert ahead and all(c["state"] == "cancelled" and c["refunded"] for c in ahead)
    spent = sum(1 for c in classes if c["state"] != "cancelled")
    assert (await balances(api, s))["credits"] == {"major": 20 - spent}
    handle = stack.env.client.get_workflow_handle(f"contract-{cid}")
    assert (await handle.result())["state"] == "terminated"
    r = await api.post(f"/v1/contracts/{cid}/terminate", json={}, headers=LP)
    assert (r.status_code, r.json()["code"]) == (409, "contract_closed")
    await assert_money_consistent(db)


async def test_a_declined_contract_books_nothing(stack: Stack, db: Sessions) -> None:
    api = stack.api
    chinese, foreign = await pair(api)
    s = await student(api, credits={"major": 4})
    first = next_week(await stack.now(), ZONE)
    cid = (
        await api.post("/v1/contracts", json=proposal(s, chinese, foreign, first), headers=LP)
    ).json()["id"]
    # Only the contract's teachers answer, and only for themselves.
    stranger = await teacher(api)
    r = await answer(api, cid, stranger, "agree")
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_actor")
    r = await answer(api, cid, foreign, "decline")
    assert (r.status_code, r.json()["state"]) == (200, "declined"), r.text
    r = await answer(api, cid, chinese, "agree")
    assert (r.status_code, r.json()["code"]) == (409, "contract_closed")
    handle = stack.env.client.get_workflow_handle(f"contract-{cid}")
    assert (await handle.result())["state"] == "declined"
    assert await weeks(api, cid) == {}
    assert (await balances(api, s))["credits"] == {"major": 4}


async def test_unanswered_contract_expires_when_its_first_week_begins(stack: Stack) -> None:
    api = stack.api
    chinese, foreign = await pair(api)
    s = await student(api, credits={"major": 4})
    first = next_week(await stack.now(), ZONE)
    cid = (
        await api.post("/v1/contracts", json=proposal(s, chinese, foreign, first), headers=LP)
    ).json()["id"]
    assert (await answer(api, cid, chinese, "agree")).status_code == 200
    await stack.env.sleep(week_start(first, ZONE) - await stack.now() + timedelta(minutes=1))
    handle = stack.env.client.get_workflow_handle(f"contract-{cid}")
    assert (await handle.result())["state"] == "expired"
    assert (await balances(api, s))["credits"] == {"major": 4}


async def test_a_fixed_contract_finishes_and_long_ones_continue_as_new(
    stack: Stack, db: Sessions
) -> None:
    """Four weeks, continuing as new after every week booked: all four weeks booked, then the
    contract finishes when its last week is over; no balance means a recorded reason."""
    api = stack.api
    chinese, foreign = await pair(api)
    s = await student(api, credits={"major": 7})  # the last foreign class finds no credit
    first = next_week(await stack.now(), ZONE)
    flow = ContractInput(
        contract_id=990001,
        student_id=s,
        chinese=WeeklyTime(teacher_id=chinese, weekday=Weekday.tuesday, start=time(18)),
        foreign=WeeklyTime(teacher_id=foreign, weekday=Weekday.thursday, start=time(19, 30)),
        first_week=first,
        weeks=4,
        course_type="major",
        actor=Actor(channel=Channel.lp, id="lp-1"),
        weeks_per_run=1,
    )
    # Through the stack's client, so that all three runs' histories are recorded.
    handle = await stack.client.start_workflow(
        ContractWorkflow.run,
        flow,
        id="contract-990001",
        task_queue=stack.settings.temporal_task_queue,
    )
    await handle.execute_update(ContractWorkflow.proposed)
    for t in (chinese, foreign):
        assert (await answer(api, 990001, t, "agree")).status_code == 200
    await stack.env.sleep(week_start(first + 4 * WEEK, ZONE) - await stack.now() + DAY)
    result = await handle.result()
    assert result is not None and result.state == "finished"
    found = await weeks(api, 990001)
    assert len(found) == 8
    assert [b["reason"] for b in found.values() if b["class_id"] is None] == [
        "insufficient_balance"
    ]
    # Each run booked one week and continued as new: the last run's history is short.
    history = await handle.fetch_history()
    assert len(history.events) < 60
    assert any(
        e.HasField("workflow_execution_continued_as_new_event_attributes")
        for e in (
            await stack.client.get_workflow_handle(
                "contract-990001", run_id=handle.first_execution_run_id
            ).fetch_history()
        ).events
    )
    await assert_money_consistent(db)


async def test_bad_proposals_are_refused_and_change_nothing(stack: Stack, db: Sessions) -> None:
    api = stack.api
    chinese, foreign = await pair(api)
    s = await student(api)
    first = next_week(await stack.now(), ZONE)
    before = await snapshot(db)
    for body, code in (
        (proposal(s, foreign, chinese, first), "bad_contract"),  # kinds swapped
        (proposal(s, chinese, foreign, first + DAY), "bad_contract"),  # not a Monday
        (proposal(s, chinese, foreign, first - 2 * WEEK), "bad_contract"),  # in the past
        (proposal(s, chinese, foreign, first, weeks=0), "malformed_body"),
        (proposal(999999, chinese, foreign, first), "student_not_found"),
        (
            {**proposal(s, chinese, foreign, first), "course_type": "trial"},
            "course_type_not_taught",
        ),
    ):
        r = await api.post("/v1/contracts", json=body, headers=LP)
        assert 400 <= r.status_code < 500 and r.json()["code"] == code, (body, r.text)
    bad_time = proposal(s, chinese, foreign, first)
    bad_time["foreign"]["start"] = "19:15"
    r = await api.post("/v1/contracts", json=bad_time, headers=LP)
    assert (r.status_code, r.json()["code"]) == (422, "bad_contract")
    r = await api.post("/v1/contracts/424242/terminate", json={}, headers=LP)
    assert (r.status_code, r.json()["code"]) == (404, "contract_not_found")
    assert await snapshot(db) == before
