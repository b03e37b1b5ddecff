"""Dual-excellence contracts (双优合约) through the API, on the time-skipping server.

covers: TCH-6, SD-7, SD-4
"""

import asyncio
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select

from domain.channels import Actor, Channel
from domain.contract import ContractInput, WeeklyTime
from domain.weekly import Weekday, at, next_week, week_start
from store.db import Sessions
from store.models import Timeslot
from tests.conftest import Stack
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
from tests.test_events import settle
from workflows.contract import ContractWorkflow

ZONE = "Asia/Shanghai"
WEEK = timedelta(weeks=1)
DAY = timedelta(days=1)
CHINESE_AT = ("tuesday", time(18, 0))
FOREIGN_AT = ("thursday", time(19, 30))
ROLES = ("chinese", "foreign")


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


async def create(
    api: httpx.AsyncClient, s: int, chinese: int, foreign: int, first: date, **kw: Any
) -> dict[str, Any]:
    r = await api.post("/v1/contracts", json=proposal(s, chinese, foreign, first, **kw), headers=LP)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def answer_week(
    api: httpx.AsyncClient, cid: int, week: date, t: int, verb: str, **body: Any
) -> httpx.Response:
    return await api.post(
        f"/v1/contracts/{cid}/weeks/{week.isoformat()}/{verb}",
        json=body,
        headers=as_("teacher", t),
    )


async def awaiting(api: httpx.AsyncClient, t: int) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/teachers/{t}/contract-weeks", headers=as_("teacher", t))
    assert r.status_code == 200, r.text
    return list(r.json())


async def until_week(
    api: httpx.AsyncClient, cid: int, week: date, *states: str
) -> dict[tuple[str, str], Any]:
    """The contract's weeks once both roles of `week` are in one of `states`."""
    for _ in range(200):
        found = await weeks(api, cid)
        if all(found.get((str(week), role), {}).get("state") in states for role in ROLES):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"week {week}: {found}")


async def slot_of(db: Sessions, slot_id: int) -> Timeslot:
    async with db() as session:
        slot = await session.get(Timeslot, slot_id)
    assert slot is not None
    return slot


async def skip_to(stack: Stack, moment: datetime) -> None:
    await stack.env.sleep(moment - await stack.now())


async def test_creation_books_w1_and_w2_at_once(stack: Stack, db: Sessions) -> None:
    """SD-7: the LP's creation is the contract, active, with W1 and W2 booked with both
    teachers (classes on contract-directed slots, debits in the ledger); the foreign teacher
    busy in W2 is recorded and the contract goes on; termination refunds them all."""
    api = stack.api
    chinese, foreign = await pair(api)
    s = await student(api, credits={"major": 20})
    other = await student(api, credits={"major": 1})
    first = next_week(await stack.now(), ZONE)
    w = [first + i * WEEK for i in range(2)]
    [busy] = await open_slots(api, foreign, foreign_start(w[1]))
    assert (await book(api, other, busy)).status_code == 201

    contract = await create(api, s, chinese, foreign, first)
    cid = contract["id"]
    assert (contract["state"], contract["answer_by"]) == ("active", None)
    booked = await weeks(api, cid)
    assert set(booked) == {(str(x), role) for x in w for role in ROLES}
    busy_week = booked[(str(w[1]), "foreign")]
    assert (busy_week["state"], busy_week["reason"], busy_week["class_id"]) == (
        "unbooked",
        "teacher_busy",
        None,
    )
    live = [b for b in booked.values() if b["state"] == "booked"]
    assert len(live) == 3 and all(b["class_id"] for b in live)
    w1_foreign = booked[(str(w[0]), "foreign")]
    assert datetime.fromisoformat(w1_foreign["start_at"]) == foreign_start(w[0])
    classes = (await api.get(f"/v1/students/{s}/classes", headers=LP)).json()
    assert sorted(c["id"] for c in classes) == sorted(b["class_id"] for b in live)
    ledger = (await api.get(f"/v1/students/{s}/ledger", headers=LP)).json()
    debits = [e for e in ledger if e["delta"] < 0]
    assert sorted(e["class_id"] for e in debits) == sorted(b["class_id"] for b in live)
    assert (await balances(api, s))["credits"] == {"major": 17}
    async with db() as session:
        slots = list(
            await session.scalars(select(Timeslot).where(Timeslot.origin == f"contract-{cid}"))
        )
    assert {(t.direction.value, t.direction_target, t.state.value) for t in slots} == {
        ("contract", str(cid), "booked")
    }
    # Old-style answers to the whole contract are refused: it is no longer proposed.
    r = await answer(api, cid, chinese, "agree")
    assert (r.status_code, r.json()["code"]) == (409, "contract_closed")

    r = await api.post(f"/v1/contracts/{cid}/terminate", json={"reason": "moved"}, headers=LP)
    assert (r.status_code, r.json()["state"]) == (200, "terminated"), r.text
    assert (await balances(api, s))["credits"] == {"major": 20}
    handle = stack.env.client.get_workflow_handle(f"contract-{cid}")
    assert (await handle.result())["state"] == "terminated"
    r = await api.post(f"/v1/contracts/{cid}/terminate", json={}, headers=LP)
    assert (r.status_code, r.json()["code"]) == (409, "contract_closed")
    await assert_money_consistent(db)


async def test_a_week_offered_to_its_teachers_is_booked_once_agreed(
    stack: Stack, db: Sessions
) -> None:
    """SD-7, TCH-6: when W1 begins, W3's contract-directed slots are opened and offered; the
    teacher portal lists them; each teacher agrees for themself and the class is booked on
    the slot; a second answer, another teacher's, or a week never offered are refused."""
    api = stack.api
    chinese, foreign = await pair(api)
    stranger = await teacher(api)
    s = await student(api, credits={"major": 20})
    first = next_week(await stack.now(), ZONE)
    w3 = first + 2 * WEEK
    cid = (await create(api, s, chinese, foreign, first))["id"]
    assert await awaiting(api, chinese) == []

    await skip_to(stack, week_start(first, ZONE) + timedelta(minutes=1))
    found = await until_week(api, cid, w3, "awaiting")
    answer_by = week_start(first + WEEK, ZONE)
    for role in ROLES:
        week = found[(str(w3), role)]
        assert datetime.fromisoformat(week["answer_by"]) == answer_by
        slot = await slot_of(db, week["timeslot_id"])
        assert (slot.state.value, slot.direction.value, slot.direction_target) == (
            "open",
            "contract",
            str(cid),
        )
    [listed] = await awaiting(api, chinese)
    assert (listed["contract_id"], listed["week"], listed["role"]) == (cid, str(w3), "chinese")
    assert listed["local_time_moved"] is False
    # The teacher portal reads only its own list.
    r = await api.get(f"/v1/teachers/{foreign}/contract-weeks", headers=as_("teacher", chinese))
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_actor")
    r = await api.get(f"/v1/teachers/{foreign}/contract-weeks", headers=LP)
    assert [x["role"] for x in r.json()] == ["foreign"]

    r = await answer_week(api, cid, w3, chinese, "agree")
    assert r.status_code == 200, r.text
    booked = r.json()
    assert (booked["state"], booked["reason"]) == ("booked", None) and booked["class_id"]
    r = await api.get(f"/v1/classes/{booked['class_id']}", headers=LP)
    assert (r.json()["teacher_id"], r.json()["timeslot_id"]) == (chinese, booked["timeslot_id"])
    assert (await balances(api, s))["credits"] == {"major": 15}
    assert await awaiting(api, chinese) == []
    for who, week, code, status in (
        (chinese, w3, "contract_week_answered", 409),  # already answered
        (stranger, w3, "contract_week_not_theirs", 409),  # not a teacher of the contract
        (chinese, w3 + WEEK, "contract_week_not_found", 404),  # not offered yet
    ):
        r = await answer_week(api, cid, week, who, "agree")
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
    r = await answer_week(api, cid, w3, foreign, "agree")
    assert (r.status_code, r.json()["state"]) == (200, "booked"), r.text
    assert (await balances(api, s))["credits"] == {"major": 14}
    state = await stack.env.client.get_workflow_handle(f"contract-{cid}").query("state")
    assert state["awaiting_weeks"] == []
    await assert_money_consistent(db)


async def test_an_unanswered_week_expires_and_frees_its_slot(stack: Stack, db: Sessions) -> None:
    """SD-7: nobody answers W3 before W2 begins: both roles expire with their reason, the
    slots become general inventory, a late answer is refused, and W4 is offered."""
    api = stack.api
    chinese, foreign = await pair(api)
    s = await student(api, credits={"major": 20})
    first = next_week(await stack.now(), ZONE)
    w3, w4 = first + 2 * WEEK, first + 3 * WEEK
    cid = (await create(api, s, chinese, foreign, first))["id"]
    await skip_to(stack, week_start(first, ZONE) + timedelta(minutes=1))
    await until_week(api, cid, w3, "awaiting")

    await skip_to(stack, week_start(first + WEEK, ZONE) + timedelta(minutes=1))
    found = await until_week(api, cid, w3, "expired")
    await until_week(api, cid, w4, "awaiting")
    for role in ROLES:
        week = found[(str(w3), role)]
        assert week["reason"].startswith(f"the {role} teacher did not answer by")
        slot = await slot_of(db, week["timeslot_id"])
        assert (slot.state.value, slot.direction.value) == ("open", "general")
    r = await answer_week(api, cid, w3, foreign, "agree")
    assert (r.status_code, r.json()["code"]) == (409, "contract_week_answered")
    assert [x["week"] for x in await awaiting(api, foreign)] == [str(w4)]
    assert (await balances(api, s))["credits"] == {"major": 16}
    await assert_money_consistent(db)


async def test_a_declined_week_frees_its_slot_and_termination_withdraws_the_weeks_awaiting(
    stack: Stack, db: Sessions
) -> None:
    """TCH-6, SD-7: the foreign teacher declines W3 (its slot goes to general inventory and
    another student books it), the Chinese teacher agrees; W4 is offered and the LP
    terminates: W4 withdrawn, its slots removed, every future contract class refunded, the
    other student's class kept. Balances equal the ledger."""
    api = stack.api
    chinese, foreign = await pair(api)
    s = await student(api, credits={"major": 20})
    other = await student(api, credits={"major": 2})
    first = next_week(await stack.now(), ZONE)
    w3, w4 = first + 2 * WEEK, first + 3 * WEEK
    cid = (await create(api, s, chinese, foreign, first))["id"]
    await skip_to(stack, week_start(first, ZONE) + timedelta(minutes=1))
    await until_week(api, cid, w3, "awaiting")

    r = await answer_week(api, cid, w3, foreign, "decline", reason="on holiday")
    assert r.status_code == 200, r.text
    declined = r.json()
    assert (declined["state"], declined["reason"], declined["class_id"]) == (
        "declined",
        "on holiday",
        None,
    )
    slot = await slot_of(db, declined["timeslot_id"])
    assert (slot.state.value, slot.direction.value, slot.direction_target) == (
        "open",
        "general",
        None,
    )
    taken = await book(api, other, declined["timeslot_id"])
    assert taken.status_code == 201, taken.text
    r = await answer_week(api, cid, w3, foreign, "agree")
    assert (r.status_code, r.json()["code"]) == (409, "contract_week_answered")
    assert (await answer_week(api, cid, w3, chinese, "agree")).json()["state"] == "booked"

    await skip_to(stack, week_start(first + WEEK, ZONE) + timedelta(minutes=1))
    found = await until_week(api, cid, w4, "awaiting")
    w4_slots = [found[(str(w4), role)]["timeslot_id"] for role in ROLES]
    r = await api.post(f"/v1/contracts/{cid}/terminate", json={"reason": "moved"}, headers=LP)
    assert (r.status_code, r.json()["state"]) == (200, "terminated"), r.text
    found = await weeks(api, cid)
    assert {found[(str(w4), role)]["state"] for role in ROLES} == {"withdrawn"}
    assert found[(str(w3), "foreign")]["state"] == "declined"
    for slot_id in w4_slots:
        assert (await slot_of(db, slot_id)).state.value == "removed"
    now = await stack.now()
    classes = (await api.get(f"/v1/students/{s}/classes", headers=LP)).json()
    ahead = [c for c in classes if datetime.fromisoformat(c["start_at"]) > now]
    assert ahead and all(c["state"] == "cancelled" and c["refunded"] for c in ahead)
    spent = sum(1 for c in classes if c["state"] != "cancelled")
    assert (await balances(api, s))["credits"] == {"major": 20 - spent}
    kept = await api.get(f"/v1/classes/{taken.json()['id']}", headers=LP)
    assert kept.json()["state"] == "booked"
    assert await awaiting(api, chinese) == []
    await settle(db)
    r = await api.get(
        "/v1/events",
        params={"types": "contract.week_withdrawn", "limit": 10},
        headers=as_("teacher", foreign),
    )
    assert r.status_code == 200, r.text
    withdrawn = [e["payload"] for e in r.json()["events"] if e["entity_id"] == cid]
    assert sorted((p["week"], p["role"], p["reason"]) for p in withdrawn) == [
        (str(w4), role, "moved") for role in ROLES
    ]
    handle = stack.env.client.get_workflow_handle(f"contract-{cid}")
    assert (await handle.result())["state"] == "terminated"
    await assert_money_consistent(db)


def next_clock_change(first: date, at_time: tuple[str, time], zone: str) -> date:
    """The first contract week from W3 on whose class is at another local time in `zone` than
    the week before's."""
    weekday = Weekday(at_time[0]).number

    def local(week: date) -> tuple[int, time]:
        moment = at(week, weekday, at_time[1], ZONE).astimezone(ZoneInfo(zone))
        return moment.weekday(), moment.time()

    week = first + 2 * WEEK
    while local(week) == local(week - WEEK):
        week += WEEK
    return week


async def test_the_teacher_sees_when_summer_time_moves_a_weeks_local_time(stack: Stack) -> None:
    """TCH-6 across a change of clocks: the contract's times are the student's (Asia/Shanghai)
    and stay put; the foreign teacher in New York sees the week whose local time moved."""
    api = stack.api
    r = await api.post(
        "/v1/teachers",
        json={
            "name": "NY",
            "kind": "foreign",
            "course_types": ["major"],
            "time_zone": "America/New_York",
        },
        headers=FIREMAN,
    )
    foreign = r.json()["id"]
    chinese = await teacher(api, kind="chinese", course_types=("advanced",))
    s = await student(api, credits={"major": 4})
    first = next_week(await stack.now(), ZONE)
    moved = next_clock_change(first, FOREIGN_AT, "America/New_York")
    cid = (await create(api, s, chinese, foreign, first))["id"]

    await skip_to(stack, week_start(moved - 2 * WEEK, ZONE) + timedelta(minutes=1))
    await until_week(api, cid, moved, "awaiting")
    [listed] = await awaiting(api, foreign)
    assert (listed["week"], listed["time_zone"], listed["local_time_moved"]) == (
        str(moved),
        "America/New_York",
        True,
    )
    local = datetime.fromisoformat(listed["local_start"])
    previous = datetime.fromisoformat(listed["previous_local_start"])
    assert datetime.fromisoformat(listed["start_at"]) == foreign_start(moved) == local
    assert local.time() != previous.time() and local.utcoffset() != previous.utcoffset()
    [chinese_week] = await awaiting(api, chinese)
    assert chinese_week["local_time_moved"] is False
    await api.post(f"/v1/contracts/{cid}/terminate", json={}, headers=LP)


async def test_a_fixed_contract_finishes_and_long_ones_continue_as_new(
    stack: Stack, db: Sessions
) -> None:
    """Four weeks, continuing as new after every week offered: W3 agreed by both (the foreign
    class finds no credit left: unbooked, its slot freed), W4 left unanswered (expired, in the
    run after); the contract finishes when W4 is over."""
    api = stack.api
    chinese, foreign = await pair(api)
    s = await student(api, credits={"major": 5})
    first = next_week(await stack.now(), ZONE)
    w3, w4 = first + 2 * WEEK, first + 3 * WEEK
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
    # Through the stack's client, so that every run's history is recorded.
    handle = await stack.client.start_workflow(
        ContractWorkflow.run,
        flow,
        id="contract-990001",
        task_queue=stack.settings.temporal_task_queue,
    )
    await handle.execute_update(ContractWorkflow.proposed)
    await skip_to(stack, week_start(first, ZONE) + timedelta(minutes=1))
    await until_week(api, 990001, w3, "awaiting")
    assert (await answer_week(api, 990001, w3, chinese, "agree")).json()["state"] == "booked"
    r = await answer_week(api, 990001, w3, foreign, "agree")
    assert (r.json()["state"], r.json()["reason"]) == ("unbooked", "insufficient_balance")
    slot = await slot_of(db, r.json()["timeslot_id"])
    assert (slot.state.value, slot.direction.value) == ("open", "general")
    await stack.env.sleep(week_start(first + 4 * WEEK, ZONE) - await stack.now() + DAY)
    result = await handle.result()
    assert result is not None and result.state == "finished"
    found = await weeks(api, 990001)
    assert len(found) == 8
    assert {found[(str(w4), role)]["state"] for role in ROLES} == {"expired"}
    # Each run offered one week and continued as new: the last run's history is short.
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
    assert (await balances(api, s))["credits"] == {"major": 0}
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


async def test_answers_racing_each_other_and_the_termination_book_at_most_once(
    stack: Stack, db: Sessions
) -> None:
    """TCH-6 (race, through the API): the Chinese teacher's yes sent three times at once for W3
    books one class (the others hear contract_week_answered); the foreign teacher's yes sent
    together with the LP's termination either books and is then refunded, or is refused, and
    leaves no live contract class ahead. Balances equal the ledger."""
    api = stack.api
    chinese, foreign = await pair(api)
    s = await student(api, credits={"major": 20})
    first = next_week(await stack.now(), ZONE)
    w3 = first + 2 * WEEK
    cid = (await create(api, s, chinese, foreign, first))["id"]
    await skip_to(stack, week_start(first, ZONE) + timedelta(minutes=1))
    await until_week(api, cid, w3, "awaiting")

    answers = await asyncio.gather(*(answer_week(api, cid, w3, chinese, "agree") for _ in range(3)))
    outcomes = sorted((r.status_code, r.json().get("state") or r.json()["code"]) for r in answers)
    assert outcomes == [
        (200, "booked"),
        (409, "contract_week_answered"),
        (409, "contract_week_answered"),
    ]
    assert (await balances(api, s))["credits"] == {"major": 15}

    yes, ended = await asyncio.gather(
        answer_week(api, cid, w3, foreign, "agree"),
        api.post(f"/v1/contracts/{cid}/terminate", json={}, headers=LP),
    )
    assert (ended.status_code, ended.json()["state"]) == (200, "terminated"), ended.text
    assert (yes.status_code, yes.json().get("state") or yes.json()["code"]) in (
        (200, "booked"),
        (409, "contract_closed"),
    ), yes.text
    now = await stack.now()
    classes = (await api.get(f"/v1/students/{s}/classes", headers=LP)).json()
    ahead = [c for c in classes if datetime.fromisoformat(c["start_at"]) > now]
    assert ahead and all(c["state"] == "cancelled" and c["refunded"] for c in ahead)
    assert (await weeks(api, cid))[(str(w3), "foreign")]["state"] in ("booked", "withdrawn")
    spent = sum(1 for c in classes if c["state"] != "cancelled")
    assert (await balances(api, s))["credits"] == {"major": 20 - spent}
    await assert_money_consistent(db)


async def test_a_portal_login_that_is_no_teacher_id_answers_nothing(stack: Stack) -> None:
    """TCH-6: the teacher portal logged in as something that is no teacher id (a digit that is
    not ASCII, a number too large) is no teacher of the contract: 403 for the whole contract,
    409 for a week, never a 500."""
    api = stack.api
    chinese, foreign = await pair(api)
    s = await student(api)
    first = next_week(await stack.now(), ZONE)
    cid = (await create(api, s, chinese, foreign, first))["id"]
    for login in ("²".encode("latin-1"), b"9" * 20):
        me: dict[str, str | bytes] = {**as_("teacher"), "X-Actor-Id": login}
        r = await api.post(f"/v1/contracts/{cid}/agree", json={}, headers=me)
        assert (r.status_code, r.json()["code"]) == (403, "forbidden_actor"), r.text
        r = await api.post(f"/v1/contracts/{cid}/weeks/{first}/agree", json={}, headers=me)
        assert (r.status_code, r.json()["code"]) == (409, "contract_week_not_theirs"), r.text
