"""The edge of HTTP, before FastAPI sees a request: duplicate identity headers, the body size
limit and the body timeout. A pure ASGI middleware: it reads the request body itself, bounded
in size and time, and hands it on whole; it never touches the response of a request it lets
through.

In order, each refusal a JSON error {"code", "message", "details"} that closes the connection:
- 400 duplicate_header: two Authorization or two X-Actor-Id headers (which would be the caller?);
- 413 body_too_large: a Content-Length over the limit, refused before a byte of the body is
  read, or a body that streams past the limit (chunked, or longer than it said), refused as
  soon as it does, so that a 100 MB body is never read in full;
- 408 request_timeout: a body not received in full within the timeout (a client that sends
  part of a body and stalls would otherwise hold its connection and a worker forever: uvicorn's
  keep-alive timeout only applies between requests).
All of this happens before authentication, which is the app's.
"""

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import metrics

# Headers that name the caller: one of each, or the caller is ambiguous.
SINGLE_HEADERS = (b"authorization", b"x-actor-id")


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


class Edges:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, body_timeout_seconds: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_seconds = body_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._check_headers(scope["headers"])
            body = await self._read_body(receive)
        except Refused as refused:
            await _answer(send, refused)
            return
        except _Disconnected:
            return  # the client left before it finished its request: nobody to answer
        await self.app(scope, _replay(body, receive), send)

    def _check_headers(self, headers: list[tuple[bytes, bytes]]) -> None:
        seen: set[bytes] = set()
        length: int | None = None
        for raw_name, value in headers:
            name = raw_name.lower()
            if name in SINGLE_HEADERS:
                if name in seen:
                    raise Refused(
                        400,
                        "duplicate_header",
                        f"send one {name.decode()} header",
                        header=name.decode(),
                    )
                seen.add(name)
            elif name == b"content-length" and value.strip().isdigit():
                length = max(length or 0, int(value))
        if length is not None and length > self.max_body_bytes:
            raise self._too_large(length)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout_seconds):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _Disconnected
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        raise self._too_large(None)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise Refused(
                408,
                "request_timeout",
                "the request body did not arrive in time",
                timeout_seconds=self.body_timeout_seconds,
            ) from None

    def _too_large(self, declared: int | None) -> Refused:
        details: dict[str, Any] = {"limit_bytes": self.max_body_bytes}
        if declared is not None:
            details["content_length"] = declared
        return Refused(
            413,
            "body_too_large",
            f"the request body is larger than {self.max_body_bytes} bytes",
            **details,
        )


class _Disconnected(Exception):
    pass


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body, whole, as one message; then whatever the client sends next (its disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _answer(send: Send, refused: Refused) -> None:
    metrics.refused(refused.code, refused.status)
    payload = json.dumps(
        {"code": refused.code, "message": refused.message, "details": refused.details}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refused.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                # The rest of the body (if any) is not read: the connection cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
