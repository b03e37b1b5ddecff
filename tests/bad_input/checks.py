"""What every bad-input test checks: a refusal is exactly the expected status and code, as a
JSON error {"code", "message", "details"}, and changes nothing in the database; an odd request
is never a 500."""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from store.db import Sessions
from tests.helpers import snapshot

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
JSON = {"Content-Type": "application/json"}


@dataclass
class World:
    teacher: int
    other_teacher: int
    student: int
    other_student: int
    slots: list[int]  # the teacher's open slots at T0 + 2 days + i hours
    foreign_slot: int  # the other teacher's open slot at T0 + 2 days


def assert_error_shape(r: httpx.Response) -> dict[str, Any]:
    assert r.headers["content-type"].startswith("application/json"), r.text
    body = r.json()
    assert isinstance(body, dict) and set(body) == {"code", "message", "details"}, body
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)
    return body


async def refused(
    api: httpx.AsyncClient,
    db: Sessions,
    method: str,
    url: str,
    status: int,
    code: str,
    **kwargs: Any,
) -> dict[str, Any]:
    """The request gets exactly this status and code, as a JSON error, and changes nothing."""
    before = await snapshot(db)
    r = await api.request(method, url, **kwargs)
    assert (r.status_code, r.json().get("code") if r.status_code < 500 else r.text) == (
        status,
        code,
    ), f"{method} {url}: {r.status_code} {r.text}"
    body = assert_error_shape(r)
    assert await snapshot(db) == before, f"{method} {url} changed the database"
    return body


Odd = tuple[str, str, dict[str, Any]]


async def odd(api: httpx.AsyncClient, db: Sessions, requests: list[Odd]) -> list[str]:
    """What went wrong with the answers to odd requests: each must be below 500 and, if it is
    refused, a JSON error that changed nothing."""
    problems = []
    for method, url, kwargs in requests:
        before = await snapshot(db)
        r = await api.request(method, url, **kwargs)
        sent = {k: str(v)[:90] for k, v in kwargs.items() if k != "headers"}
        actor = str(kwargs.get("headers", {}).get("X-Actor-Id", ""))[:20]
        what = f"{method} {url} {sent} actor={actor!r}: {r.status_code}"
        if r.status_code >= 500:
            problems.append(f"{what} {r.text[:60]}")
        elif r.status_code >= 400:
            try:
                assert_error_shape(r)
            except (AssertionError, ValueError):
                problems.append(f"{what} is not a JSON error: {r.text[:100]}")
            if await snapshot(db) != before:
                problems.append(f"{what} refused, but changed the database")
    return problems


def no_problems(problems: list[str]) -> None:
    assert not problems, f"{len(problems)} odd requests went wrong:\n" + "\n".join(problems)
