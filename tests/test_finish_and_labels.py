"""Finish a class with a label, undo finish, adjust the label: conditional, audited, the money
the label table says (more in tests/test_label_money.py), each refusal with its own code and
nothing changed.

covers: FM-3, FM-4, FM-5, LP-4, CC-7
"""

from datetime import timedelta

import httpx

from store.db import Sessions
from tests.conftest import T0, Clock
from tests.helpers import (
    CC,
    FIREMAN,
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


async def booked_class(api: httpx.AsyncClient, course_type: str = "major") -> tuple[int, int]:
    """(class id, student id) of a class starting at T0 + 2 days."""
    t = await teacher(api, course_types=(course_type,))
    s = await student(api, credits={course_type: 2})
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    r = await book(api, s, slot, course_type=course_type)
    assert r.status_code == 201, r.text
    return int(r.json()["id"]), s


async def test_finish_relabel_undo_and_the_audit_trail(
    api: httpx.AsyncClient, clock: Clock, db: Sessions
) -> None:
    """FM-3, LP-4, FM-5, FM-4: the whole life of a label."""
    c, s = await booked_class(api)
    url = f"/v1/classes/{c}"
    details = await refused(
        api, db, f"{url}/finish", {"label": "as_scheduled"}, FIREMAN, 409, "class_not_finishable"
    )
    assert details["start_at"] == (T0 + 2 * DAY).isoformat()
    await refused(
        api, db, f"{url}/label", {"label": "teacher_no_show"}, LP, 409, "class_not_finished"
    )
    await refused(api, db, f"{url}/undo-finish", {}, FIREMAN, 409, "class_not_finished")

    clock.now = T0 + 2 * DAY  # the class starts
    r = await api.post(f"{url}/finish", json={"label": "as_scheduled"}, headers=FIREMAN)
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["label"]) == ("finished", "as_scheduled")
    details = await refused(
        api, db, f"{url}/finish", {"label": "as_scheduled"}, FIREMAN, 409, "class_not_finishable"
    )
    assert details["state"] == "finished"
    # A finished class is no longer cancellable.
    await refused(api, db, f"{url}/cancel", {}, LP, 409, "class_not_cancellable")

    r = await api.post(
        f"{url}/label", json={"label": "student_no_show", "reason": "never came"}, headers=LP
    )
    assert (r.status_code, r.json()["label"]) == (200, "student_no_show"), r.text
    r = await api.post(f"{url}/label", json={"label": "system_issue"}, headers=FIREMAN)
    assert (r.status_code, r.json()["label"]) == (200, "system_issue"), r.text

    r = await api.post(f"{url}/undo-finish", json={"reason": "wrong class"}, headers=FIREMAN)
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["label"]) == ("booked", None)
    # Booked again, and started: it can be finished again, with another label.
    r = await api.post(f"{url}/finish", json={"label": "teacher_it_issue"}, headers=FIREMAN)
    assert (r.status_code, r.json()["label"]) == (200, "teacher_it_issue"), r.text

    trail = (await api.get(f"{url}/audit", headers=FIREMAN)).json()
    assert [(e["action"], e["channel"], e["details"].get("label")) for e in trail] == [
        ("booked", "parent_h5", None),
        ("finished", "fireman", "as_scheduled"),
        ("label_adjusted", "lp", "student_no_show"),
        ("label_adjusted", "fireman", "system_issue"),
        ("finish_undone", "fireman", None),
        ("finished", "fireman", "teacher_it_issue"),
    ]
    assert trail[2]["details"]["old_label"] == "as_scheduled"
    assert trail[2]["details"]["reason"] == "never came"
    assert trail[3]["details"]["money"] == "refunded"  # system_issue gives the credit back
    assert trail[4]["details"] == {
        "old_label": "system_issue",
        "reason": "wrong class",
        "money": "charged",
    }
    # teacher_it_issue: the one credit paid is given back, the teacher penalised.
    assert trail[5]["details"] == {
        "label": "teacher_it_issue",
        "money": "refunded",
        "penalty": "teacher_it_issue",
    }
    assert (await balances(api, s))["credits"] == {"major": 2}
    await assert_money_consistent(db)


async def test_what_cannot_be_finished_or_relabelled(
    api: httpx.AsyncClient, clock: Clock, db: Sessions
) -> None:
    c, _ = await booked_class(api)
    r = await api.post(f"/v1/classes/{c}/cancel", json={}, headers=LP)
    assert r.status_code == 200, r.text
    clock.now = T0 + 3 * DAY
    details = await refused(
        api,
        db,
        f"/v1/classes/{c}/finish",
        {"label": "as_scheduled"},
        FIREMAN,
        409,
        "class_not_finishable",
    )
    assert details["state"] == "cancelled"
    await refused(api, db, f"/v1/classes/{c}/undo-finish", {}, FIREMAN, 409, "class_not_finished")
    for url, headers in (
        ("/v1/classes/999999/finish", FIREMAN),
        ("/v1/classes/999999/label", LP),
    ):
        await refused(api, db, url, {"label": "as_scheduled"}, headers, 404, "class_not_found")
    await refused(api, db, "/v1/classes/999999/undo-finish", {}, FIREMAN, 404, "class_not_found")
    for body in ({"label": "late"}, {}, {"label": None}):
        await refused(api, db, f"/v1/classes/{c}/finish", body, FIREMAN, 422, "malformed_body")
    await refused(
        api,
        db,
        f"/v1/classes/{c}/label",
        {"label": "as_scheduled", "reason": "x" * 501},
        LP,
        422,
        "malformed_body",
    )
    await assert_money_consistent(db)


async def test_channels_cc_adjusts_trial_labels_only(
    api: httpx.AsyncClient, clock: Clock, db: Sessions
) -> None:
    """CC-7: CC adjusts the label of a trial class; of other classes, it is refused. Only the
    fireman finishes and undoes; the other channels are refused and nothing changes."""
    major, _ = await booked_class(api)
    trial, _ = await booked_class(api, course_type="trial")
    clock.now = T0 + 2 * DAY
    for c in (major, trial):
        r = await api.post(
            f"/v1/classes/{c}/finish", json={"label": "as_scheduled"}, headers=FIREMAN
        )
        assert r.status_code == 200, r.text

    details = await refused(
        api,
        db,
        f"/v1/classes/{major}/label",
        {"label": "student_no_show"},
        CC,
        403,
        "trial_classes_only",
    )
    assert details["course_type"] == "major"
    r = await api.post(f"/v1/classes/{trial}/label", json={"label": "student_it_issue"}, headers=CC)
    assert (r.status_code, r.json()["label"]) == (200, "student_it_issue"), r.text

    for channel in ("lp", "cc", "teacher", "parent_h5", "supply_demand"):
        headers = as_(channel, "1")
        for url, body in (
            (f"/v1/classes/{major}/finish", {"label": "as_scheduled"}),
            (f"/v1/classes/{major}/undo-finish", {}),
        ):
            await refused(api, db, url, body, headers, 403, "forbidden_channel")
    for channel in ("teacher", "parent_pc", "tmk", "curriculum"):
        await refused(
            api,
            db,
            f"/v1/classes/{major}/label",
            {"label": "as_scheduled"},
            as_(channel, "1"),
            403,
            "forbidden_channel",
        )
    await assert_money_consistent(db)


async def test_a_retried_finish_replays_its_answer(
    api: httpx.AsyncClient, clock: Clock, db: Sessions
) -> None:
    """With an Idempotency-Key, a repeated finish answers as the first did, not with a 409."""
    c, _ = await booked_class(api)
    clock.now = T0 + 2 * DAY + HOUR
    headers = {**FIREMAN, "Idempotency-Key": "finish-once"}
    first = await api.post(
        f"/v1/classes/{c}/finish", json={"label": "as_scheduled"}, headers=headers
    )
    again = await api.post(
        f"/v1/classes/{c}/finish", json={"label": "as_scheduled"}, headers=headers
    )
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    trail = (await api.get(f"/v1/classes/{c}/audit", headers=FIREMAN)).json()
    assert [e["action"] for e in trail].count("finished") == 1
