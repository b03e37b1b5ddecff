"""Trust at the edges: an outage answers a fast JSON 503 with a code, no transaction waits on
Temporal (a slow Temporal starves no other route), and a key retried after a crash gets the
first answer.

covers: TCH-3, LP-6, PAR-1, H5-1, TMK-1
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from store import operation_keys
from store.db import Sessions
from tests.conftest import T0, Clock, Stack
from tests.helpers import (
    LP,
    as_,
    assert_money_consistent,
    balances,
    open_slots,
    student,
    teacher,
)
from yueke.settings import Settings, dev_channel_keys

DAY = timedelta(days=1)


@asynccontextmanager
async def api_of(settings: Settings, **app_options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The API as a channel sees it: an exception that escapes it fails the test, as the
    server would drop the connection."""
    app = create_app(settings, **app_options)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://yueke") as api:
            yield api


def assert_unavailable(response: httpx.Response, code: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == code


async def test_a_database_that_cannot_be_reached_answers_503(clock: Clock) -> None:
    settings = Settings(
        database_url="postgresql://postgres@127.0.0.1:1/nowhere",
        channel_keys=dev_channel_keys(),
    )
    async with api_of(settings, clock=clock) as api:
        for _ in range(2):  # and the client's connection stays usable
            read = await api.get("/v1/students/1/balances", headers=as_("parent_h5", 1))
            assert_unavailable(read, "database_unavailable")
        booked = await api.post(
            "/v1/classes",
            json={"student_id": 1, "timeslot_id": 1, "course_type": "major"},
            headers=as_("parent_h5", 1),
        )
        assert_unavailable(booked, "database_unavailable")


async def test_a_busy_pool_answers_503_database_busy(
    settings: Settings, clock: Clock, api: httpx.AsyncClient
) -> None:
    s = await student(api, credits={"major": 1})
    crowded = settings.model_copy(update={"db_pool_size": 1, "db_pool_timeout": 0.2})
    app = create_app(crowded, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://yueke") as busy:
            sessions: Sessions = app.state.sessions
            async with sessions() as only:  # the pool's one connection, held
                await only.execute(text("select 1"))
                read = await busy.get(f"/v1/students/{s}/balances", headers=as_("parent_h5", s))
                assert_unavailable(read, "database_busy")
            read = await busy.get(f"/v1/students/{s}/balances", headers=as_("parent_h5", s))
            assert read.status_code == 200


async def test_temporal_that_cannot_be_reached_answers_503_and_books_nothing(
    settings: Settings, clock: Clock, api: httpx.AsyncClient, db: Sessions
) -> None:
    """Class requests and over-booked classes need their flow; without Temporal they refuse
    with 503 and leave the student's money as it was."""
    s = await student(api, credits={"major": 2, "trial": 1})
    t = await teacher(api)
    before = await balances(api, s)
    down = settings.model_copy(
        update={"temporal_address": "127.0.0.1:1", "temporal_connect_timeout": 1.0}
    )
    async with api_of(down, clock=clock) as cut_off:
        health = await cut_off.get("/healthz")
        assert_unavailable(health, "temporal_unavailable")
        assert health.json()["database"] == "ok"
        asked = await cut_off.post(
            "/v1/class-requests",
            json={
                "student_id": s,
                "teacher_id": t,
                "start_at": (T0 + 2 * DAY).isoformat(),
                "course_type": "major",
            },
            headers=as_("parent_h5", s),
        )
        assert_unavailable(asked, "temporal_unavailable")
        overbooked = await cut_off.post(
            "/v1/overbooked-classes",
            json={"student_id": s, "start_at": (T0 + 2 * DAY).isoformat()},
            headers={**as_("tmk", "tmk-1"), "Idempotency-Key": "ob-1"},
        )
        assert_unavailable(overbooked, "temporal_unavailable")
        # The booking was taken back, and its key forgotten: a retry acts again.
        again = await cut_off.post(
            "/v1/overbooked-classes",
            json={"student_id": s, "start_at": (T0 + 2 * DAY).isoformat()},
            headers={**as_("tmk", "tmk-1"), "Idempotency-Key": "ob-1"},
        )
        assert_unavailable(again, "temporal_unavailable")
    assert await balances(api, s) == before
    await assert_money_consistent(db)


async def test_a_temporal_without_workers_starves_no_other_route(
    time_skipping: WorkflowEnvironment, settings: Settings, clock: Clock, db: Sessions
) -> None:
    """Flows nobody runs (the worker is down): keyed class requests wait at most the flow
    timeout and answer 503, holding no pooled connection, so bookings and reads of other
    callers go on."""
    small = settings.model_copy(
        update={"db_pool_size": 1, "db_pool_timeout": 2.0, "flow_answer_timeout": 3.0}
    )
    async with api_of(small, temporal_client=time_skipping.client, clock=clock) as api:
        t = await teacher(api)
        slot = (await open_slots(api, t, T0 + DAY))[0]
        students = [await student(api, credits={"major": 2}) for _ in range(5)]

        async def ask(s: int) -> httpx.Response:
            return await api.post(
                "/v1/class-requests",
                json={
                    "student_id": s,
                    "teacher_id": t,
                    "start_at": (T0 + 2 * DAY).isoformat(),
                    "course_type": "major",
                },
                headers={**as_("parent_h5", s), "Idempotency-Key": f"ask-{s}"},
            )

        waiting = [asyncio.create_task(ask(s)) for s in students[1:]]
        await asyncio.sleep(0.5)  # the requests are waiting on their flows
        async with asyncio.timeout(2.5):  # before any flow call gives up
            booked = await api.post(
                "/v1/classes",
                json={"student_id": students[0], "timeslot_id": slot, "course_type": "major"},
                headers=as_("parent_h5", students[0]),
            )
            read = await api.get(
                f"/v1/students/{students[0]}/balances", headers=as_("parent_h5", students[0])
            )
        assert booked.status_code == 201, booked.text
        assert read.status_code == 200
        for answer in await asyncio.gather(*waiting):
            assert_unavailable(answer, "temporal_unavailable")
    await assert_money_consistent(db)


async def test_a_retried_key_gets_the_first_answer_after_a_crash(
    stack: Stack, db: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TCH-3: the API dies after the flow approved but before it remembered the answer; the
    teacher's retry with the same key gets the approval, not 409 request_closed, and the
    class is booked and paid once."""
    api = stack.api
    t = await teacher(api)
    s = await student(api, credits={"major": 2})
    start = (await stack.now()).replace(minute=0, second=0, microsecond=0) + 2 * DAY
    made = await api.post(
        "/v1/class-requests",
        json={
            "student_id": s,
            "teacher_id": t,
            "start_at": start.isoformat(),
            "course_type": "major",
        },
        headers=as_("lp", LP),
    )
    assert made.status_code == 201, made.text
    request_id = made.json()["id"]

    real = operation_keys.remember
    dying = True

    async def dies_once(*args: Any, **kwargs: Any) -> None:
        nonlocal dying
        if dying and args[1] != "activity":  # the API's key, not the flow's own steps
            dying = False
            raise ConnectionResetError("the API process died")
        await real(*args, **kwargs)

    monkeypatch.setattr(operation_keys, "remember", dies_once)
    headers = {**as_("teacher", t), "Idempotency-Key": "approve-1"}
    path = f"/v1/class-requests/{request_id}/approve"
    first = await api.post(path, json={"keep_slot": False}, headers=headers)
    assert first.status_code == 503, first.text  # the answer was lost on the way

    retried = await api.post(path, json={"keep_slot": False}, headers=headers)
    assert retried.status_code == 200, retried.text
    assert retried.json()["state"] == "approved"
    class_id = retried.json()["class_id"]
    assert class_id is not None
    replayed = await api.post(path, json={"keep_slot": False}, headers=headers)
    assert replayed.json() == retried.json()

    assert (await balances(api, s))["credits"] == {"major": 1}
    async with db() as session:
        classes = await session.scalar(
            text("SELECT count(*) FROM classes WHERE student_id = :s"), {"s": s}
        )
    assert classes == 1
    await assert_money_consistent(db)


async def test_connections_the_server_dropped_are_replaced_unseen(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """PAR-1, H5-1: pooled connections are not pinged at each checkout; when PostgreSQL has
    dropped them (a restart, a failover), bookings, cancels, availability and reads go on."""
    t = await teacher(api)
    s = await student(api, credits={"major": 2})
    [slot, other] = await open_slots(api, t, T0 + 2 * DAY, T0 + 3 * DAY)
    parent = as_("parent_h5", s)
    assert (await api.get(f"/v1/students/{s}/balances", headers=parent)).status_code == 200

    async def drop_the_apis_connections() -> None:
        async with db() as session:
            await session.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'yueke-api' AND pid <> pg_backend_pid()"
                )
            )

    await drop_the_apis_connections()
    read = await api.get(f"/v1/students/{s}/balances", headers=parent)
    assert read.status_code == 200, read.text
    await drop_the_apis_connections()
    booked = await api.post(
        "/v1/classes",
        json={"student_id": s, "timeslot_id": slot, "course_type": "major"},
        headers=parent,
    )
    assert booked.status_code == 201, booked.text
    await drop_the_apis_connections()
    listed = await api.get(
        "/v1/timeslots",
        params={"start_from": T0.isoformat(), "start_to": (T0 + 7 * DAY).isoformat()},
        headers=parent,
    )
    assert listed.status_code == 200 and [x["id"] for x in listed.json()] == [other]
    await drop_the_apis_connections()
    cancelled = await api.post(f"/v1/classes/{booked.json()['id']}/cancel", json={}, headers=parent)
    assert cancelled.status_code == 200, cancelled.text
    await assert_money_consistent(db)
