"""The edge of HTTP: a body size limit checked before the body is read and before
anyone is authenticated, a time limit on receiving the body, one Authorization and one
X-Actor-Id, held slots shown only to their student and to staff, and an OpenAPI that lists
every error a route can answer.

Some tests drive the ASGI app directly, message by message, to send a body in chunks or to stall
in the middle of one, as a slow or hostile client would.

covers: PAR-1, H5-1, TCH-5, LP-2
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from api.app import create_app
from store.db import Sessions
from tests.conftest import T0, Clock
from tests.helpers import (
    CC,
    FIREMAN,
    LP,
    as_,
    client_showing_500s,
    open_slots,
    snapshot,
    student,
    teacher,
)
from yueke.settings import Settings, dev_channel_keys

DAY = timedelta(days=1)
MiB = 1 << 20
CHUNK = 64 * 1024


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        channel_keys=dev_channel_keys(),
        db_pool_size=5,
        temporal_address="127.0.0.1:1",  # nothing here needs a flow
        body_timeout_seconds=0.5,
    )


@pytest.fixture
async def app(settings: Settings, clock: Clock) -> AsyncIterator[FastAPI]:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(settings: Settings, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    async with client_showing_500s(settings, clock) as client:
        yield client


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    reads: int  # how many body messages the app (or its middleware) asked for
    seconds: float
    sent: int = 0  # body bytes handed over

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Client:
    """One HTTP request as ASGI messages: the body comes from `chunks`, lazily; with `stall` the
    client stops sending after the chunks, without ending the body."""

    app: FastAPI
    reads: int = 0
    sent: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def request(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        chunks: Iterator[bytes],
        *,
        stall: bool = False,
        delay: float = 0,
        give_up_after: float = 10,
    ) -> Answer:
        pending = list(_peek(chunks))  # [first chunk] or []; the rest stays lazy
        out: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if pending:
                if self.reads and delay:
                    await asyncio.sleep(delay)
                self.reads += 1
                chunk = pending.pop()
                nxt = next(chunks, None)
                if nxt is not None:
                    pending.append(nxt)
                self.sent += len(chunk)
                return {"type": "http.request", "body": chunk, "more_body": bool(pending) or stall}
            if stall and not self.done.is_set():
                self.reads += 1
                await self.done.wait()  # the client never sends the rest
            await self.done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            out.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.done.set()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
            "client": ("127.0.0.1", 50000),
            "server": ("yueke", 80),
        }
        started = time.monotonic()
        try:
            await asyncio.wait_for(self.app(scope, receive, send), give_up_after)
        finally:
            self.done.set()
        start = next(m for m in out if m["type"] == "http.response.start")
        return Answer(
            status=start["status"],
            headers={k.decode(): v.decode() for k, v in start.get("headers", [])},
            body=b"".join(m.get("body", b"") for m in out if m["type"] == "http.response.body"),
            reads=self.reads,
            seconds=time.monotonic() - started,
            sent=self.sent,
        )


def _peek(chunks: Iterator[bytes]) -> list[bytes]:
    first = next(chunks, None)
    return [] if first is None else [first]


def endless(limit_bytes: int = 100 * 10**6) -> Iterator[bytes]:
    """A JSON-looking body of 100 MB, made only as it is read."""
    sent = 0
    yield b'{"name": "'
    while sent < limit_bytes:
        sent += CHUNK
        yield b"x" * CHUNK


def json_body(body: object) -> Iterator[bytes]:
    yield json.dumps(body).encode()


def error(answer: Answer, status: int, code: str) -> dict[str, Any]:
    assert answer.status == status, (answer.status, answer.body[:300])
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert set(body) == {"code", "message", "details"} and body["code"] == code, body
    return dict(body["details"])


def header_list(headers: dict[str, str], **extra: str) -> list[tuple[str, str]]:
    return [*headers.items(), *extra.items()]


# --- 6a. the body size limit -------------------------------------------------------------------


async def test_a_body_declared_too_large_is_refused_before_it_is_read(
    app: FastAPI, db: Sessions
) -> None:
    """A Content-Length over YUEKE_MAX_BODY_BYTES (1 MiB) is 413 body_too_large before a byte of
    the body is read, and before authentication: even without a channel key."""
    before = await snapshot(db)
    for headers in (
        [("content-type", "application/json"), ("content-length", str(100 * 10**6))],
        [*as_("parent_h5", 1).items(), ("content-length", str(100 * 10**6))],
        [*CC.items(), ("content-length", str(MiB + 1))],
    ):
        answer = await Client(app).request("POST", "/v1/students", headers, endless())
        details = error(answer, 413, "body_too_large")
        assert details["limit_bytes"] == MiB
        assert answer.reads == 0, f"the body was read ({answer.reads} messages)"
    assert await snapshot(db) == before


async def test_a_chunked_body_is_cut_off_at_the_limit(app: FastAPI, db: Sessions) -> None:
    """Without a Content-Length the body is counted as it streams in: 413 body_too_large once it
    passes 1 MiB, long before 100 MB are read, whoever sends it."""
    before = await snapshot(db)
    for headers in ([("content-type", "application/json")], header_list(CC)):
        answer = await Client(app).request("POST", "/v1/students", headers, endless())
        error(answer, 413, "body_too_large")
        assert answer.sent <= MiB + CHUNK + 16, f"{answer.sent} bytes read"
    # A Content-Length that lies is no way around it.
    answer = await Client(app).request(
        "POST", "/v1/students", header_list(CC, **{"content-length": "100"}), endless()
    )
    error(answer, 413, "body_too_large")
    assert answer.sent <= MiB + CHUNK + 16
    assert await snapshot(db) == before


async def test_a_body_within_the_limit_goes_through(app: FastAPI, db: Sessions) -> None:
    """A body of exactly 1 MiB, in chunks or whole, is read and answered as usual."""
    body = json.dumps({"name": "S"}).encode()
    body = body[:-1] + b" " * (MiB - len(body)) + b"}"
    assert len(body) == MiB

    def in_chunks() -> Iterator[bytes]:
        for i in range(0, len(body), CHUNK):
            yield body[i : i + CHUNK]

    for chunks, length in ((in_chunks(), None), (iter([body]), str(MiB))):
        headers = header_list(CC, **{"content-type": "application/json"})
        if length:
            headers.append(("content-length", length))
        answer = await Client(app).request("POST", "/v1/students", headers, chunks)
        assert answer.status == 201, answer.body[:300]


async def test_too_large_through_httpx(api: httpx.AsyncClient, db: Sessions) -> None:
    """PAR-1: the same through an ordinary client: a 2 MiB booking is 413 JSON, nothing booked."""
    before = await snapshot(db)
    r = await api.post(
        "/v1/classes",
        content=b'{"student_id": 1, "lesson": "' + b"x" * (2 * MiB) + b'"}',
        headers={**as_("parent_h5", 1), "Content-Type": "application/json"},
    )
    assert (r.status_code, r.json()["code"]) == (413, "body_too_large"), r.text[:200]
    assert set(r.json()) == {"code", "message", "details"}
    assert await snapshot(db) == before


# --- 6b. a body that never finishes ------------------------------------------------------------


async def test_a_stalled_body_times_out(app: FastAPI, db: Sessions) -> None:
    """A client that sends part of a body and stalls gets 408 request_timeout after
    YUEKE_BODY_TIMEOUT_SECONDS (0.5 s here), and the connection is let go."""
    before = await snapshot(db)
    for headers in (
        header_list(CC, **{"content-type": "application/json", "content-length": "100"}),
        header_list(CC, **{"content-type": "application/json"}),
        [("content-type", "application/json")],
    ):
        answer = await Client(app).request(
            "POST", "/v1/students", headers, iter([b'{"name": "S']), stall=True, give_up_after=5
        )
        details = error(answer, 408, "request_timeout")
        assert details["timeout_seconds"] == 0.5
        assert 0.4 < answer.seconds < 3, answer.seconds
        assert answer.headers.get("connection") == "close"
    assert await snapshot(db) == before


async def test_a_slow_body_within_the_timeout_goes_through(app: FastAPI) -> None:
    """The limit is on the whole body: chunks that all arrive within it are read as usual."""
    answer = await Client(app).request(
        "POST",
        "/v1/students",
        header_list(CC, **{"content-type": "application/json"}),
        iter([b'{"name": ', b'"S", ', b'"level": 2}']),
        delay=0.1,
    )
    assert answer.status == 201, answer.body


# --- 6c. one Authorization, one X-Actor-Id -----------------------------------------------------


async def test_duplicate_identity_headers_are_400(api: httpx.AsyncClient, db: Sessions) -> None:
    """LP-2: two Authorization or two X-Actor-Id headers (even equal ones) are 400
    duplicate_header: which one would be the caller is not guessed."""
    s = await student(api, credits={"major": 1})
    t = await teacher(api)
    [slot] = await open_slots(api, t, T0 + 2 * DAY)
    booking = {"student_id": s, "timeslot_id": slot, "course_type": "major"}
    before = await snapshot(db)
    for headers, name in (
        (
            [("Authorization", "Bearer dev-lp"), ("Authorization", "Bearer dev-fireman")],
            "authorization",
        ),
        ([("Authorization", "Bearer dev-lp"), ("Authorization", "Bearer dev-lp")], "authorization"),
        ([("X-Actor-Id", "lp-1"), ("X-Actor-Id", "lp-2")], "x-actor-id"),
        ([("x-actor-id", str(s)), ("X-ACTOR-ID", str(s))], "x-actor-id"),
    ):
        base = [("Authorization", "Bearer dev-lp"), ("X-Actor-Id", "lp-1")]
        sent = [h for h in base if h[0].lower() != name] + headers
        r = await api.post("/v1/classes", json=booking, headers=sent)
        assert (r.status_code, r.json()["code"]) == (400, "duplicate_header"), r.text
        assert r.json()["details"]["header"] == name
        r = await api.get(f"/v1/students/{s}/balances", headers=sent)
        assert (r.status_code, r.json()["code"]) == (400, "duplicate_header"), r.text
    assert await snapshot(db) == before


# --- 6d. held slots are the student's business -------------------------------------------------


async def test_held_slots_show_only_to_their_student_and_staff(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """H5-1, PAR-1, TCH-5: the slots a teacher holds for a student after cancelling are listed
    with ?student_id= to that student's parents and to staff channels; the teacher portal (even
    the holding teacher) and another student's parents get 403."""
    t = await teacher(api)
    s, other = await student(api), await student(api)
    held, general = await open_slots(api, t, T0 + 2 * DAY, T0 + 2 * DAY + timedelta(hours=1))
    async with db.begin() as session:
        await session.execute(
            text(
                "update timeslots set direction = 'student', direction_target = :s, "
                "expires_at = :e where id = :id"
            ),
            {"s": str(s), "e": T0 + DAY, "id": held},
        )
    window = {"start_from": T0.isoformat(), "start_to": (T0 + 3 * DAY).isoformat()}
    for headers in (as_("teacher", t), as_("teacher", 999), as_("parent_h5", other)):
        r = await api.get("/v1/timeslots", params={**window, "student_id": s}, headers=headers)
        assert r.status_code == 403, r.text
        assert r.json()["code"] in ("forbidden_channel", "forbidden_actor"), r.text
    for headers in (as_("parent_h5", s), as_("parent_pc", s), LP, CC, FIREMAN):
        r = await api.get("/v1/timeslots", params={**window, "student_id": s}, headers=headers)
        assert r.status_code == 200, r.text
        assert sorted(x["id"] for x in r.json()) == sorted([held, general])
    # Without student_id everyone, the teacher too, sees the general slots only.
    r = await api.get("/v1/timeslots", params=window, headers=as_("teacher", t))
    assert [x["id"] for x in r.json()] == [general]


# --- 6e. every error in the OpenAPI ------------------------------------------------------------

EVERY_ERROR = {"400", "401", "403", "404", "408", "409", "413", "422", "503"}


def test_every_route_documents_every_error_it_can_answer(settings: Settings) -> None:
    """Each operation lists 400, 401, 403, 404, 408, 409, 413, 422 and 503 with the one
    Error schema {code, message, details}; FastAPI's own HTTPValidationError is gone."""
    spec = create_app(settings).openapi()
    schemas = spec["components"]["schemas"]
    error_schema = schemas["Error"]
    assert set(error_schema["required"]) == {"code", "message", "details"}
    assert error_schema["properties"]["details"]["type"] == "object"
    assert "HTTPValidationError" not in schemas
    operations = 0
    for path, item in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in item.items():
            operations += 1
            responses = operation["responses"]
            assert EVERY_ERROR <= responses.keys(), (method, path, sorted(responses))
            # A 500 is a bug to fix, never an answer to document (so a fuzzer flags it).
            assert "500" not in responses, (method, path)
            for status in EVERY_ERROR:
                content = responses[status]["content"]["application/json"]["schema"]
                assert content == {"$ref": "#/components/schemas/Error"}, (method, path, status)
                assert responses[status]["description"]
    assert operations > 50


def test_local_time_examples_are_valid_in_the_openapi(settings: Settings) -> None:
    """The booking rule's wished `start` and a contract's weekly `start` are local times: their
    schema's examples (00:00:00 among them) match the schema, and no `format: time` (which in
    JSON Schema needs an offset) says otherwise."""
    import re

    schemas = create_app(settings).openapi()["components"]["schemas"]
    for model in ("Wish", "WeeklyTime"):
        start = schemas[model]["properties"]["start"]
        assert start.get("format") != "time", start
        assert start["type"] == "string" and start["examples"], start
        for example in [*start["examples"], "00:00:00", "18:30"]:
            assert re.fullmatch(start["pattern"], example), (model, example)
        for wrong in ("18:00:00-05:00", "18:00Z", "24:00", "6pm"):
            assert not re.fullmatch(start["pattern"], wrong), (model, wrong)


def test_the_new_settings_have_their_defaults() -> None:
    settings = Settings()
    assert (settings.max_body_bytes, settings.body_timeout_seconds) == (MiB, 10)
