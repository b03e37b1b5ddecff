"""Small helpers shared by the tests: channel headers, seeding through the API, ledger checks."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import func, select, text

from api.app import create_app
from store.db import Sessions
from store.ledger import ledger_disagreements
from store.models import Base, Class, LedgerEntry
from yueke.settings import Settings


def as_(channel: str, actor: object = "staff-1", **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer dev-{channel}", "X-Actor-Id": str(actor), **extra}


FIREMAN = as_("fireman")
CC = as_("cc")
LP = as_("lp")


async def teacher(
    api: httpx.AsyncClient, *, kind: str = "foreign", course_types: tuple[str, ...] = ("major",)
) -> int:
    r = await api.post(
        "/v1/teachers",
        json={"name": "T", "kind": kind, "course_types": list(course_types)},
        headers=FIREMAN,
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def student(
    api: httpx.AsyncClient, *, credits: dict[str, int] | None = None, level: int = 1
) -> int:
    r = await api.post("/v1/students", json={"name": "S", "level": level}, headers=CC)
    assert r.status_code == 201, r.text
    student_id = int(r.json()["id"])
    for course_type, amount in (credits or {}).items():
        await grant(api, student_id, "credit", amount, course_type)
    return student_id


async def grant(
    api: httpx.AsyncClient, student_id: int, asset: str, amount: int, course_type: str | None = None
) -> None:
    r = await api.post(
        f"/v1/students/{student_id}/grants",
        json={"asset": asset, "amount": amount, "course_type": course_type},
        headers=CC,
    )
    assert r.status_code == 201, r.text


async def open_slots(api: httpx.AsyncClient, teacher_id: int, *starts: datetime) -> list[int]:
    r = await api.post(
        f"/v1/teachers/{teacher_id}/timeslots",
        json={"start_at": [s.isoformat() for s in starts]},
        headers=as_("teacher", teacher_id),
    )
    assert r.status_code == 201, r.text
    return [int(s["id"]) for s in r.json()["opened"]]


async def book(
    api: httpx.AsyncClient,
    student_id: int,
    timeslot_id: int,
    *,
    course_type: str = "major",
    payment: dict[str, Any] | None = None,
    channel: str = "parent_h5",
) -> httpx.Response:
    actor = student_id if channel in ("parent_h5", "parent_pc") else "staff-1"
    return await api.post(
        "/v1/classes",
        json={
            "student_id": student_id,
            "timeslot_id": timeslot_id,
            "course_type": course_type,
            "payment": payment or {"asset": "credit"},
        },
        headers=as_(channel, actor),
    )


async def balances(api: httpx.AsyncClient, student_id: int) -> dict[str, Any]:
    r = await api.get(f"/v1/students/{student_id}/balances", headers=CC)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def assert_money_consistent(db: Sessions) -> None:
    """Every balance equals its ledger; every class's entries match its state."""
    async with db() as session:
        assert await ledger_disagreements(session) == []
        per_class = (
            select(Class.id, Class.state, Class.refunded, func.sum(LedgerEntry.delta))
            .join(LedgerEntry, LedgerEntry.class_id == Class.id)
            .group_by(Class.id)
        )
        for class_id, state, refunded, total in await session.execute(per_class):
            # A debit stands for a live class, a cancellation without refund or a finished
            # class whose label keeps the payment; a refunded class was given it back in full.
            expected_zero = bool(refunded)
            assert (total == 0) == expected_zero, (class_id, state, refunded, total)
            assert total <= 0, (class_id, total)


async def snapshot(db: Sessions) -> dict[str, list[str]]:
    """Every row of every table, as JSON text: equal before and after means nothing changed."""
    rows: dict[str, list[str]] = {}
    async with db() as session:
        for table in Base.metadata.sorted_tables:
            found = await session.scalars(
                text(f"SELECT to_jsonb(t)::text AS row FROM {table.name} t ORDER BY 1")
            )
            rows[table.name] = list(found)
    return rows


@asynccontextmanager
async def client_showing_500s(
    settings: Settings, clock: Callable[[], datetime]
) -> AsyncIterator[httpx.AsyncClient]:
    """As conftest's `api`, but an unhandled error comes back as the 500 a client would see,
    not as an exception in the test, so that a test can assert "never a 500"."""
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://yueke") as client:
            yield client


async def refused(
    api: httpx.AsyncClient,
    db: Sessions,
    url: str,
    body: object,
    headers: dict[str, str],
    status: int,
    code: str,
) -> dict[str, Any]:
    """The POST gets exactly this status and code and changes nothing; its details."""
    before = await snapshot(db)
    r = await api.post(url, json=body, headers=headers)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert await snapshot(db) == before
    return dict(r.json()["details"])
