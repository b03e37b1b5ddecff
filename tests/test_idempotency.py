"""Idempotency-Key on POSTs: a repeat replays the first answer and acts once; a key reused for
another request is refused; keys are per channel; concurrent repeats act once; a refusal is not
remembered.

covers: PAR-1, PAR-3, H5-1, H5-5, TCH-1, LP-2, LP-8
"""

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text

from store.db import Sessions
from tests.conftest import T0
from tests.helpers import (
    CC,
    LP,
    as_,
    assert_money_consistent,
    balances,
    grant,
    open_slots,
    snapshot,
    student,
    teacher,
)

DAY = timedelta(days=1)


def with_key(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


def booking(student_id: int, timeslot_id: int, **extra: Any) -> dict[str, Any]:
    return {"student_id": student_id, "timeslot_id": timeslot_id, "course_type": "major", **extra}


async def count(db: Sessions, sql: str, **params: Any) -> int:
    async with db() as session:
        return int(await session.scalar(text(sql), params) or 0)


async def classes_of(db: Sessions, student_id: int) -> int:
    return await count(
        db, "select count(*) from classes where student_id = :s and state = 'booked'", s=student_id
    )


async def debits_of(db: Sessions, student_id: int) -> int:
    return await count(
        db,
        "select count(*) from ledger_entries where student_id = :s and reason = 'booking'",
        s=student_id,
    )


async def test_same_key_same_body_replays_and_books_once(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    t = await teacher(api)
    s = await student(api, credits={"major": 5})
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    headers = with_key(as_("parent_h5", s), "book-1")
    first = await api.post("/v1/classes", json=booking(s, slot), headers=headers)
    assert first.status_code == 201, first.text
    for _ in range(3):
        again = await api.post("/v1/classes", json=booking(s, slot), headers=headers)
        assert again.status_code == 201, again.text
        assert again.json() == first.json()
    # The same body written differently (key order, a default spelled out) is the same request.
    spelled_out = {
        "payment": {"asset": "credit", "coupon_id": None},
        "lesson": None,
        "course_type": "major",
        "timeslot_id": slot,
        "student_id": s,
    }
    again = await api.post("/v1/classes", json=spelled_out, headers=headers)
    assert (again.status_code, again.json()) == (201, first.json())
    assert (await classes_of(db, s), await debits_of(db, s)) == (1, 1)
    assert (await balances(api, s))["credits"] == {"major": 4}
    # Without a key, the same body is a new request: the slot is taken now.
    r = await api.post("/v1/classes", json=booking(s, slot), headers=as_("parent_h5", s))
    assert (r.status_code, r.json()["code"]) == (409, "slot_already_booked")
    await assert_money_consistent(db)


async def test_other_posts_replay_too(api: httpx.AsyncClient, db: Sessions) -> None:
    """Grants, coupons, opening and closing slots, batches and cancellations act once."""
    t = await teacher(api)
    s = await student(api)
    calls: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        (f"/v1/students/{s}/grants", {"asset": "credit", "amount": 3, "course_type": "major"}, CC),
        (f"/v1/students/{s}/grants", {"asset": "stones", "amount": 500}, CC),
        (
            f"/v1/students/{s}/coupons",
            {"course_type": "major", "expires_at": (T0 + 9 * DAY).isoformat()},
            CC,
        ),
        (
            f"/v1/teachers/{t}/timeslots",
            {"start_at": [(T0 + d * DAY).isoformat() for d in (2, 3, 4)]},
            as_("teacher", t),
        ),
        ("/v1/students", {"name": "S2"}, CC),
        (
            "/v1/teachers",
            {"name": "T2", "kind": "chinese", "course_types": ["advanced"]},
            as_("fireman"),
        ),
    ]
    for i, (url, body, headers) in enumerate(calls):
        first = await api.post(url, json=body, headers=with_key(headers, f"k-{i}"))
        assert first.status_code == 201, first.text
        before = await snapshot(db)
        again = await api.post(url, json=body, headers=with_key(headers, f"k-{i}"))
        assert (again.status_code, again.json()) == (201, first.json()), url
        assert await snapshot(db) == before, url
    money = await balances(api, s)
    assert (money["credits"], money["stones"], len(money["coupons"])) == ({"major": 3}, 500, 1)
    assert await count(db, "select count(*) from timeslots") == 3
    assert await count(db, "select count(*) from students") == 2
    assert await count(db, "select count(*) from teachers") == 2

    slots = [
        x["id"]
        for x in (
            await api.get(
                "/v1/timeslots",
                params={"start_from": T0.isoformat(), "start_to": (T0 + 9 * DAY).isoformat()},
                headers=LP,
            )
        ).json()
    ]
    batch = {"student_id": s, "timeslot_ids": slots[:2], "course_type": "major"}
    first = await api.post("/v1/classes/batch", json=batch, headers=with_key(LP, "batch"))
    assert first.status_code == 201, first.text
    again = await api.post("/v1/classes/batch", json=batch, headers=with_key(LP, "batch"))
    assert (again.status_code, again.json()) == (201, first.json())
    assert (await classes_of(db, s), await debits_of(db, s)) == (2, 2)

    class_id = first.json()["classes"][0]["id"]
    cancel = with_key(as_("parent_pc", s), "cancel")
    first = await api.post(f"/v1/classes/{class_id}/cancel", json={}, headers=cancel)
    assert first.status_code == 200 and first.json()["refunded"] is True, first.text
    again = await api.post(f"/v1/classes/{class_id}/cancel", json={}, headers=cancel)
    assert (again.status_code, again.json()) == (200, first.json())
    refunds = "select count(*) from ledger_entries where reason = 'refund'"
    assert await count(db, refunds) == 1
    close = with_key(as_("teacher", t), "close")
    first = await api.post(
        f"/v1/teachers/{t}/timeslots/close", json={"timeslot_ids": [slots[2]]}, headers=close
    )
    assert first.status_code == 200, first.text
    again = await api.post(
        f"/v1/teachers/{t}/timeslots/close", json={"timeslot_ids": [slots[2]]}, headers=close
    )
    assert (again.status_code, again.json()) == (200, first.json())
    assert (await balances(api, s))["credits"] == {"major": 2}
    await assert_money_consistent(db)


async def test_same_key_another_request_is_refused_and_changes_nothing(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    t = await teacher(api)
    s = await student(api, credits={"major": 5})
    a, b = await open_slots(api, t, T0 + 2 * DAY, T0 + 3 * DAY)
    headers = with_key(as_("parent_h5", s), "k")
    first = await api.post("/v1/classes", json=booking(s, a), headers=headers)
    assert first.status_code == 201, first.text
    for url, body in (
        ("/v1/classes", booking(s, b)),
        ("/v1/classes", booking(s, a, lesson="Unit 3")),
        ("/v1/classes", booking(s, a, payment={"asset": "stones"})),
        # The same body on another route is another request.
        ("/v1/classes/batch", {"student_id": s, "timeslot_ids": [a], "course_type": "major"}),
        (f"/v1/classes/{first.json()['id']}/cancel", {}),
    ):
        before = await snapshot(db)
        r = await api.post(url, json=body, headers=headers)
        if url == "/v1/classes/batch":
            # Parents may not book batches: the channel check comes first.
            assert r.json()["code"] == "forbidden_channel"
            continue
        assert (r.status_code, r.json()["code"]) == (422, "idempotency_key_reused"), (url, r.text)
        assert set(r.json()) == {"code", "message", "details"}
        assert await snapshot(db) == before, url
    assert (await classes_of(db, s), await debits_of(db, s)) == (1, 1)
    # The first request still replays.
    again = await api.post("/v1/classes", json=booking(s, a), headers=headers)
    assert (again.status_code, again.json()) == (201, first.json())

    # A staff key reused on another route.
    first = await api.post(
        f"/v1/students/{s}/grants",
        json={"asset": "stones", "amount": 10},
        headers=with_key(LP, "lp-k"),
    )
    assert first.status_code == 201
    before = await snapshot(db)
    r = await api.post(
        f"/v1/students/{s}/coupons",
        json={"course_type": "major", "expires_at": (T0 + 9 * DAY).isoformat()},
        headers=with_key(LP, "lp-k"),
    )
    assert (r.status_code, r.json()["code"]) == (422, "idempotency_key_reused")
    assert await snapshot(db) == before


async def test_keys_are_per_channel(api: httpx.AsyncClient, db: Sessions) -> None:
    t = await teacher(api)
    s = await student(api, credits={"major": 5})
    a, b = await open_slots(api, t, T0 + 2 * DAY, T0 + 3 * DAY)
    first = await api.post(
        "/v1/classes", json=booking(s, a), headers=with_key(as_("parent_h5", s), "shared")
    )
    assert first.status_code == 201, first.text
    # The same key and body from another channel is that channel's own first request: it acts
    # (and finds the slot taken) rather than replaying parent_h5's answer.
    r = await api.post(
        "/v1/classes", json=booking(s, a), headers=with_key(as_("parent_pc", s), "shared")
    )
    assert (r.status_code, r.json()["code"]) == (409, "slot_already_booked")
    # The same key with another body from another channel is not "reused" either.
    r = await api.post("/v1/classes", json=booking(s, b), headers=with_key(LP, "shared"))
    assert r.status_code == 201, r.text
    assert r.json()["id"] != first.json()["id"] and r.json()["channel"] == "lp"
    # Each channel replays its own.
    again = await api.post("/v1/classes", json=booking(s, b), headers=with_key(LP, "shared"))
    assert (again.status_code, again.json()) == (201, r.json())
    again = await api.post(
        "/v1/classes", json=booking(s, a), headers=with_key(as_("parent_h5", s), "shared")
    )
    assert (again.status_code, again.json()) == (201, first.json())
    assert (await classes_of(db, s), await debits_of(db, s)) == (2, 2)
    await assert_money_consistent(db)


async def test_concurrent_duplicates_act_once(api: httpx.AsyncClient, db: Sessions) -> None:
    t = await teacher(api)
    s = await student(api, credits={"major": 5})
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    headers = with_key(as_("parent_h5", s), "tap-tap-tap")
    answers = await asyncio.gather(
        *(api.post("/v1/classes", json=booking(s, slot), headers=headers) for _ in range(10))
    )
    assert [r.status_code for r in answers] == [201] * 10, [r.text for r in answers]
    assert all(r.json() == answers[0].json() for r in answers)
    assert (await classes_of(db, s), await debits_of(db, s)) == (1, 1)
    assert (await balances(api, s))["credits"] == {"major": 4}
    await assert_money_consistent(db)


async def test_concurrent_grants_with_one_key_credit_once(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    s = await student(api)
    body = {"asset": "credit", "amount": 7, "course_type": "major"}
    answers = await asyncio.gather(
        *(
            api.post(f"/v1/students/{s}/grants", json=body, headers=with_key(CC, "g"))
            for _ in range(10)
        )
    )
    assert [r.status_code for r in answers] == [201] * 10, [r.text for r in answers]
    assert all(r.json() == answers[0].json() for r in answers)
    assert (await balances(api, s))["credits"] == {"major": 7}
    await assert_money_consistent(db)


async def test_concurrent_different_bodies_with_one_key(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """One key, ten different bookings at once: exactly one acts, the others are told the key
    was used for another request."""
    t = await teacher(api)
    s = await student(api, credits={"major": 20})
    slots = await open_slots(api, t, *(T0 + 2 * DAY + i * timedelta(hours=1) for i in range(10)))
    answers = await asyncio.gather(
        *(api.post("/v1/classes", json=booking(s, x), headers=with_key(LP, "one")) for x in slots)
    )
    outcomes = sorted(
        (r.status_code, r.json().get("code") if r.status_code >= 400 else None) for r in answers
    )
    assert outcomes == [(201, None)] + [(422, "idempotency_key_reused")] * 9, outcomes
    assert (await classes_of(db, s), await debits_of(db, s)) == (1, 1)
    await assert_money_consistent(db)


async def test_a_refusal_is_not_remembered(api: httpx.AsyncClient, db: Sessions) -> None:
    t = await teacher(api)
    s = await student(api)
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    headers = with_key(as_("parent_h5", s), "retry-me")
    before = await snapshot(db)
    r = await api.post("/v1/classes", json=booking(s, slot), headers=headers)
    assert (r.status_code, r.json()["code"]) == (409, "insufficient_balance")
    assert await snapshot(db) == before  # not even the key
    await grant(api, s, "credit", 1, "major")
    first = await api.post("/v1/classes", json=booking(s, slot), headers=headers)
    assert first.status_code == 201, first.text
    again = await api.post("/v1/classes", json=booking(s, slot), headers=headers)
    assert (again.status_code, again.json()) == (201, first.json())
    assert (await classes_of(db, s), await debits_of(db, s)) == (1, 1)
    assert (await balances(api, s))["credits"] == {"major": 0}
    # A refused request does not reserve the key for its body either: after a refusal, the
    # same key may carry a different request.
    other_headers = with_key(as_("parent_h5", s), "second-try")
    r = await api.post("/v1/classes", json=booking(s, 999), headers=other_headers)
    assert r.json()["code"] == "timeslot_not_found"
    [later] = await open_slots(api, t, T0 + 3 * DAY)
    await grant(api, s, "credit", 1, "major")
    r = await api.post("/v1/classes", json=booking(s, later), headers=other_headers)
    assert r.status_code == 201, r.text
    await assert_money_consistent(db)


async def test_a_replay_does_not_skip_the_actor_check(api: httpx.AsyncClient, db: Sessions) -> None:
    """A key is no pass: another parent repeating a parent's request with the same key is
    refused as acting for someone else, not handed the first parent's answer."""
    t = await teacher(api)
    s = await student(api, credits={"major": 1})
    o = await student(api)
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    booked = await api.post("/v1/classes", json=booking(s, slot), headers=as_("parent_h5", s))
    class_id = booked.json()["id"]
    cancel = f"/v1/classes/{class_id}/cancel"
    first = await api.post(cancel, json={}, headers=with_key(as_("parent_h5", s), "c1"))
    assert first.status_code == 200, first.text
    before = await snapshot(db)
    r = await api.post(cancel, json={}, headers=with_key(as_("parent_h5", o), "c1"))
    assert (r.status_code, r.json().get("code")) == (403, "forbidden_actor"), r.text
    assert await snapshot(db) == before
