"""A small keep-alive HTTP/1.1 client, cheap on CPU (as bench/http.py), that keeps every answer.

httpx costs about 3 CPU-ms a request, as much as the server under test on a 2-core machine;
this does one request at a time per connection and reads bodies by Content-Length (uvicorn
answers every JSON body, and its own errors, with one). Each answer is recorded in the
`Answers` it was given, so a test checks them all afterwards: JSON, and never a 5xx other than
a 503 with a `code`.
"""

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


class ConnectionDropped(Exception):
    """The server closed the connection, or did not answer in time."""


@dataclass
class Answer:
    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: bytes
    started: float  # time.monotonic() when the request was sent
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        """The refusal's code, if the body is a JSON object with one."""
        try:
            body = self.json()
        except ValueError:
            return None
        return body.get("code") if isinstance(body, dict) else None

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status} {self.body[:300]!r}"


def problem(answer: Answer) -> str | None:
    """What is wrong with an answer, if anything: every answer is JSON, and a 5xx only a 503
    with a code."""
    if not answer.headers.get("content-type", "").startswith("application/json"):
        return f"not JSON ({answer.headers.get('content-type')}): {answer}"
    try:
        answer.json()
    except ValueError:
        return f"body is not JSON: {answer}"
    if answer.status >= 500 and not (answer.status == 503 and answer.code):
        return f"server error: {answer}"
    return None


@dataclass
class Answers:
    """Every answer of a test, every connection the server dropped while a request was on it,
    and every one it closed while idle (uvicorn's keep-alive timeout is 5 s), which the client
    opens again as any HTTP client does."""

    all: list[Answer] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [p for a in self.all if (p := problem(a)) is not None]

    def assert_all_well(self) -> None:
        problems = self.problems()
        assert not problems, f"{len(problems)} bad answers, e.g. {problems[:5]}"
        assert not self.dropped, f"{len(self.dropped)} connections dropped: {self.dropped[:5]}"

    def statuses(self, answers: list[Answer] | None = None) -> Counter[tuple[int, str | None]]:
        return Counter((a.status, a.code) for a in (self.all if answers is None else answers))


def p99(seconds: list[float]) -> float:
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


class Connection:
    """One keep-alive connection. A dropped connection is recorded in `answers.dropped`, one
    closed while idle in `answers.reopened`, and each is opened again for the next request."""

    def __init__(
        self, port: int, headers: dict[str, str], answers: Answers, *, timeout: float = 30.0
    ) -> None:
        self.port = port
        self.answers = answers
        self.timeout = timeout
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._head = f"Host: 127.0.0.1:{port}\r\n{extra}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
            self._reader = self._writer = None

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        payload = b"" if body is None else json.dumps(body).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        content_type = "Content-Type: application/json\r\n" if body is not None else ""
        message = (
            f"{method} {path} HTTP/1.1\r\n{self._head}{extra}{content_type}"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                if self._reader is not None and self._reader.at_eof():
                    self.answers.reopened.append(f"{method} {path}")
                    await self.close()
                if self._writer is None:
                    self._reader, self._writer = await asyncio.open_connection(
                        "127.0.0.1", self.port
                    )
                assert self._reader is not None
                self._writer.write(message)
                status_line = await self._reader.readline()
                if not status_line:
                    raise ConnectionDropped("closed by the server")
                status = int(status_line.split()[1])
                answer_headers: dict[str, str] = {}
                while (line := await self._reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    answer_headers[name.strip().lower()] = value.strip()
                length = int(answer_headers.get("content-length", "0"))
                data = await self._reader.readexactly(length)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ConnectionDropped) as exc:
            self.answers.dropped.append(f"{method} {path}: {exc.__class__.__name__}: {exc}")
            await self.close()
            raise ConnectionDropped(f"{method} {path}: {exc!r}") from exc
        if answer_headers.get("connection", "").lower() == "close":
            await self.close()
        answer = Answer(
            method, path, status, answer_headers, data, started, time.monotonic() - started
        )
        self.answers.all.append(answer)
        return answer
