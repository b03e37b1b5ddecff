"""Labels move money (FM-3, FM-4, LP-4, CC-7): each change applies the difference once, through
the ledger; teacher penalties (TCH-5, teacher labels); a class's history; undo-finish puts an
over-booked class's own row back.

covers: FM-3, FM-4, LP-4, CC-7, TCH-5
"""

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from domain.channels import Actor, Channel
from domain.labels import REFUNDING, penalty
from domain.overbooking import MatchSource, OverbookKind, OverbookState
from domain.rules import BookingRules
from domain.words import ClassLabel, CourseType
from store import holds
from store.db import Sessions
from store.models import Class, OverbookedClass
from tests.conftest import T0, Clock
from tests.helpers import (
    CC,
    FIREMAN,
    LP,
    as_,
    assert_money_consistent,
    balances,
    book,
    grant,
    open_slots,
    refused,
    student,
    teacher,
)

DAY = timedelta(days=1)


async def finished_class(
    api: httpx.AsyncClient, clock: Clock, label: str, *, credits: int = 1
) -> tuple[int, int, int]:
    """(class, student, teacher) of a major class starting at T0 + 2 days, finished with label;
    the student had `credits` credits before booking."""
    t = await teacher(api)
    s = await student(api, credits={"major": credits})
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    r = await book(api, s, slot)
    assert r.status_code == 201, r.text
    c = int(r.json()["id"])
    clock.now = T0 + 2 * DAY
    r = await api.post(f"/v1/classes/{c}/finish", json={"label": label}, headers=FIREMAN)
    assert r.status_code == 200, r.text
    return c, s, t


async def credits(api: httpx.AsyncClient, s: int) -> int:
    return int((await balances(api, s))["credits"].get("major", 0))


async def standing(api: httpx.AsyncClient, t: int) -> list[str]:
    r = await api.get(f"/v1/teachers/{t}/penalties", headers=FIREMAN)
    assert r.status_code == 200, r.text
    return [p["kind"] for p in r.json() if p["revoked_at"] is None]


def expected(label: str | None, start: int) -> int:
    """What the label table says the balance is: refunded labels give the one credit back."""
    paid = label is None or ClassLabel(label) not in REFUNDING
    return start - 1 if paid else start


async def test_every_label_finish_relabel_undo_relabel(
    api: httpx.AsyncClient, clock: Clock, db: Sessions
) -> None:
    """For each pair of labels: finish with one, relabel to the other, undo, finish again;
    after each step the balance is what the label table says and equals the ledger."""
    labels = [label.value for label in ClassLabel]
    for first in labels:
        for second in labels:
            clock.now = T0
            c, s, t = await finished_class(api, clock, first)
            steps: list[tuple[str, dict[str, Any], str | None]] = [
                ("label", {"label": second}, second),
                ("undo-finish", {"reason": "again"}, None),
                ("finish", {"label": first}, first),
                ("label", {"label": first}, first),
            ]
            assert await credits(api, s) == expected(first, 1), (first,)
            for path, body, now_label in steps:
                r = await api.post(f"/v1/classes/{c}/{path}", json=body, headers=FIREMAN)
                assert r.status_code == 200, (first, second, path, r.text)
                assert await credits(api, s) == expected(now_label, 1), (first, second, path)
                kind = penalty(ClassLabel(now_label)) if now_label else None
                assert await standing(api, t) == ([kind.value] if kind else []), (path, now_label)
            await assert_money_consistent(db)


async def test_money_moves_in_the_ledger_and_the_history_says_so(
    api: httpx.AsyncClient, clock: Clock, db: Sessions
) -> None:
    c, s, t = await finished_class(api, clock, "teacher_no_show")
    assert await credits(api, s) == 1
    r = await api.post(
        f"/v1/classes/{c}/label", json={"label": "as_scheduled", "reason": "was there"}, headers=LP
    )
    assert r.status_code == 200, r.text
    assert await credits(api, s) == 0
    r = await api.post(f"/v1/classes/{c}/label", json={"label": "system_issue"}, headers=FIREMAN)
    assert r.status_code == 200, r.text
    r = await api.post(f"/v1/classes/{c}/undo-finish", json={}, headers=FIREMAN)
    assert r.status_code == 200, r.text
    ledger = (await api.get(f"/v1/students/{s}/ledger", headers=CC)).json()
    assert [(e["reason"], e["delta"]) for e in reversed(ledger)] == [
        ("grant", 1),
        ("booking", -1),
        ("label_refund", 1),
        ("label_charge", -1),
        ("label_refund", 1),
        ("label_charge", -1),
    ]
    history = (await api.get(f"/v1/classes/{c}/history", headers=FIREMAN)).json()
    assert [
        (e["action"], e["channel"], e["details"].get("money"), e["details"].get("penalty"))
        for e in history
    ] == [
        ("booked", "parent_h5", None, None),
        ("finished", "fireman", "refunded", "teacher_no_show"),
        ("label_adjusted", "lp", "charged", None),
        ("label_adjusted", "fireman", "refunded", None),
        ("finish_undone", "fireman", "charged", None),
    ]
    assert history[2]["details"]["penalty_revoked"] == "teacher_no_show"
    assert history == (await api.get(f"/v1/classes/{c}/audit", headers=FIREMAN)).json()
    penalties = (await api.get(f"/v1/teachers/{t}/penalties", headers=FIREMAN)).json()
    assert [(p["kind"], p["class_id"], p["revoked_channel"]) for p in penalties] == [
        ("teacher_no_show", c, "lp")
    ]
    await assert_money_consistent(db)


async def test_leaving_a_refund_needs_the_money_back(
    api: httpx.AsyncClient, clock: Clock, db: Sessions
) -> None:
    """The refunded credit spent meanwhile: relabelling to a keeping label, or undoing the
    finish, is 409 insufficient_balance and changes nothing."""
    c, s, _ = await finished_class(api, clock, "system_issue")
    t2 = await teacher(api)
    [slot] = await open_slots(api, t2, T0 + 3 * DAY)
    r = await book(api, s, slot)  # spends the refunded credit
    assert r.status_code == 201, r.text
    for url, body in (
        (f"/v1/classes/{c}/label", {"label": "as_scheduled"}),
        (f"/v1/classes/{c}/undo-finish", {}),
    ):
        details = await refused(api, db, url, body, FIREMAN, 409, "insufficient_balance")
        assert details["needed"] == 1
    await grant(api, s, "credit", 1, "major")
    r = await api.post(f"/v1/classes/{c}/undo-finish", json={}, headers=FIREMAN)
    assert (r.status_code, r.json()["state"]) == (200, "booked"), r.text
    assert await credits(api, s) == 0
    await assert_money_consistent(db)


async def test_two_relabels_at_once_move_money_once_each(
    api: httpx.AsyncClient, clock: Clock, db: Sessions
) -> None:
    """Racing relabels serialize on the class row: the money ends where the last label says,
    every movement in the ledger, whatever the order."""
    for _ in range(5):
        clock.now = T0
        c, s, t = await finished_class(api, clock, "as_scheduled")
        calls = [
            api.post(f"/v1/classes/{c}/label", json={"label": label}, headers=FIREMAN)
            for label in ("teacher_no_show", "teacher_no_show", "system_issue", "as_scheduled")
        ]
        answers = await asyncio.gather(*calls)
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        async with db() as session:
            final = await session.scalar(select(Class).where(Class.id == c))
        assert final is not None and final.label is not None
        assert await credits(api, s) == expected(final.label.value, 1)
        kind = penalty(final.label)
        assert await standing(api, t) == ([kind.value] if kind else [])
        await assert_money_consistent(db)
    # Two identical refunds at once: one refund, not two.
    clock.now = T0
    c, s, _ = await finished_class(api, clock, "as_scheduled")
    answers = await asyncio.gather(
        *[
            api.post(f"/v1/classes/{c}/label", json={"label": "system_issue"}, headers=FIREMAN)
            for _ in range(4)
        ]
    )
    assert [r.status_code for r in answers] == [200] * 4
    assert await credits(api, s) == 1
    await assert_money_consistent(db)


async def test_cc_relabels_a_trial_and_moves_its_money(
    api: httpx.AsyncClient, clock: Clock, db: Sessions
) -> None:
    t = await teacher(api, course_types=("trial",))
    s = await student(api, credits={"trial": 1})
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    r = await book(api, s, slot, course_type="trial")
    c = int(r.json()["id"])
    clock.now = T0 + 2 * DAY
    r = await api.post(f"/v1/classes/{c}/finish", json={"label": "as_scheduled"}, headers=FIREMAN)
    assert r.status_code == 200, r.text
    r = await api.post(f"/v1/classes/{c}/label", json={"label": "teacher_it_issue"}, headers=CC)
    assert r.status_code == 200, r.text
    assert (await balances(api, s))["credits"]["trial"] == 1
    assert await standing(api, t) == ["teacher_it_issue"]
    await assert_money_consistent(db)


async def test_teacher_cancel_is_a_penalty_the_teacher_reads(
    api: httpx.AsyncClient, clock: Clock, db: Sessions
) -> None:
    """TCH-5: the teacher cancel writes its penalty in its own transaction; the teacher portal
    reads its own penalties, not another teacher's."""
    t = await teacher(api)
    other = await teacher(api)
    s = await student(api, credits={"major": 1})
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    c = int((await book(api, s, slot)).json()["id"])
    actor = Actor(channel=Channel.teacher, id=str(t))
    async with db.begin() as session:
        await holds.cancel_by_teacher(
            session,
            class_id=c,
            teacher_id=t,
            offered=[],
            reason="sick",
            actor=actor,
            now=clock.now,
            rules=BookingRules(),
        )
    r = await api.get(f"/v1/teachers/{t}/penalties", headers=as_("teacher", t))
    assert r.status_code == 200, r.text
    [p] = r.json()
    assert (p["kind"], p["class_id"], p["reason"], p["channel"], p["revoked_at"]) == (
        "teacher_cancel",
        c,
        "sick",
        "teacher",
        None,
    )
    assert (await api.get(f"/v1/teachers/{other}/penalties", headers=FIREMAN)).json() == []
    r = await api.get(f"/v1/teachers/{t}/penalties", headers=as_("teacher", other))
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_actor")
    for channel in ("lp", "cc", "parent_h5", "supply_demand"):
        r = await api.get(f"/v1/teachers/{t}/penalties", headers=as_(channel, "1"))
        assert (r.status_code, r.json()["code"]) == (403, "forbidden_channel")
    r = await api.get("/v1/teachers/999999/penalties", headers=FIREMAN)
    assert (r.status_code, r.json()["code"]) == (404, "teacher_not_found")
    history = (await api.get(f"/v1/classes/{c}/history", headers=FIREMAN)).json()
    assert [(e["action"], e["details"].get("by_teacher")) for e in history] == [
        ("booked", None),
        ("cancelled", True),
    ]
    # A cancelled class is not finished, nor relabelled, nor reopened.
    await refused(
        api,
        db,
        f"/v1/classes/{c}/finish",
        {"label": "as_scheduled"},
        FIREMAN,
        409,
        "class_not_finishable",
    )
    await refused(
        api, db, f"/v1/classes/{c}/label", {"label": "as_scheduled"}, LP, 409, "class_not_finished"
    )
    r = await api.get("/v1/classes/999999/history", headers=FIREMAN)
    assert (r.status_code, r.json()["code"]) == (404, "class_not_found")
    r = await api.get(f"/v1/classes/{c}/history", headers=LP)
    assert (r.status_code, r.json()["code"]) == (403, "forbidden_channel")
    await assert_money_consistent(db)


async def test_undo_finish_puts_an_overbooked_class_row_back(
    api: httpx.AsyncClient, clock: Clock, db: Sessions
) -> None:
    """An over-booked class (its own row as the matched class left it) finished, then the
    finish undone: the row is `finished`, then `matched` again, as before the finish."""
    t = await teacher(api)
    s = await student(api, credits={"major": 1})
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    c = int((await book(api, s, slot)).json()["id"])
    async with db.begin() as session:
        session.add(
            OverbookedClass(
                class_id=c,
                student_id=s,
                kind=OverbookKind.overbook,
                course_type=CourseType.major,
                start_at=T0 + 2 * DAY,
                state=OverbookState.matched,
                entered_at=None,
                matched_at=T0,
                matched_from=MatchSource.general,
                wait_until=T0 + 2 * DAY + timedelta(minutes=10),
                created_at=T0,
                updated_at=T0,
            )
        )

    async def row_state() -> OverbookState:
        async with db() as session:
            state = await session.scalar(
                select(OverbookedClass.state).where(OverbookedClass.class_id == c)
            )
        assert state is not None
        return state

    clock.now = T0 + 2 * DAY
    r = await api.post(f"/v1/classes/{c}/finish", json={"label": "as_scheduled"}, headers=FIREMAN)
    assert r.status_code == 200, r.text
    assert await row_state() is OverbookState.finished
    r = await api.post(f"/v1/classes/{c}/undo-finish", json={}, headers=FIREMAN)
    assert r.status_code == 200, r.text
    assert await row_state() is OverbookState.matched
    # Entered, never matched: back to waiting; neither: back to booked.
    for entered, state in ((T0 + 2 * DAY, OverbookState.waiting), (None, OverbookState.booked)):
        async with db.begin() as session:
            await session.execute(
                update(OverbookedClass)
                .where(OverbookedClass.class_id == c)
                .values(matched_at=None, entered_at=entered)
            )
        for path, body in (("finish", {"label": "student_no_show"}), ("undo-finish", {})):
            r = await api.post(f"/v1/classes/{c}/{path}", json=body, headers=FIREMAN)
            assert r.status_code == 200, r.text
        assert await row_state() is state
    await assert_money_consistent(db)
