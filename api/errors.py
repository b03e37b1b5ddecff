"""Every refusal as JSON {"code", "message", "details"}: never a 500 for bad input, a 503 with
a code for an outage, and never an exception that reaches the server (which would drop the
client's connection)."""

import json
import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api import metrics
from domain.errors import DatabaseBusy, DatabaseUnavailable, DomainError
from domain.refusal import Refusal

log = logging.getLogger(__name__)


def _refusal(exc: Exception) -> Refusal:
    """What to answer for an exception of ours, of the request's shape, or of Temporal."""
    if isinstance(exc, DomainError):
        return Refusal.of(exc)
    if isinstance(exc, RequestValidationError):
        problems = [
            {"at": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
        ]
        return Refusal(
            code="malformed_body",
            status=422,
            message="the request does not match the schema",
            details={"errors": problems},
        )
    if isinstance(exc, HTTPException):
        codes = {404: "no_such_route", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, "http_error")
        return Refusal(code=code, status=exc.status_code, message=str(exc.detail))
    if isinstance(exc, WorkflowUpdateFailedError):
        # A workflow update refused: the store's refusal it carries, or the flow's own reason.
        cause = exc.cause
        if isinstance(cause, ApplicationError):
            detail = cause.details[0] if cause.details else None
            if isinstance(detail, dict) and {"code", "status", "message"} <= detail.keys():
                return Refusal.model_validate(detail)
            return Refusal(code=cause.type or "flow_refused", status=409, message=cause.message)
        return Refusal(code="flow_refused", status=409, message=str(cause))
    if isinstance(exc, PoolTimeout):
        return Refusal.of(DatabaseBusy("every database connection stayed busy; retry"))
    if isinstance(exc, asyncpg.DataError):
        # A value asyncpg cannot send as its parameter's type (an id past 64 bits...).
        return Refusal(code="invalid_value", status=422, message="a value is out of range")
    if _database_down(exc):
        return Refusal.of(DatabaseUnavailable("the database cannot be reached; retry"))
    if isinstance(exc, DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        if sqlstate in ("40001", "40P01"):
            # Two transactions crossed (serialization failure or deadlock): nothing changed.
            return Refusal(code="conflict_retry", status=409, message="retry the request")
        if isinstance(exc, DataError) or sqlstate.startswith("22"):
            # A value the database cannot hold: an id past 64 bits, a NUL character...
            return Refusal(
                code="invalid_value", status=422, message="a value is out of range or invalid"
            )
    if isinstance(exc, RPCError):
        if exc.status is RPCStatusCode.NOT_FOUND:
            return Refusal(code="flow_not_found", status=404, message=exc.message)
        return Refusal(code="temporal_unavailable", status=503, message=exc.message)
    log.exception("unexpected error", exc_info=exc)
    return Refusal(code="internal_error", status=500, message="unexpected error")


# SQLSTATE classes of a lost or refused connection: 08 connection exception, 53 insufficient
# resources, 57 operator intervention (shutdown, cannot connect now).
_OUTAGE_CLASSES = ("08", "53", "57")


def _database_down(exc: Exception) -> bool:
    if isinstance(exc, DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        return bool(exc.connection_invalidated) or sqlstate.startswith(_OUTAGE_CLASSES)
    if isinstance(exc, asyncpg.PostgresError):
        return (getattr(exc, "sqlstate", None) or "").startswith(_OUTAGE_CLASSES)
    # A refused or reset socket, a connection asyncpg already lost.
    return isinstance(exc, OSError | asyncpg.InterfaceError | asyncpg.PostgresConnectionError)


def error_body(exc: Exception) -> dict[str, Any]:
    """One item's error inside a batch response."""
    return _refusal(exc).model_dump()


async def _answer(_: Request, exc: Exception) -> JSONResponse:
    refusal = _refusal(exc)
    metrics.refused(refusal.code, refusal.status)
    return JSONResponse(
        {"code": refusal.code, "message": refusal.message, "details": refusal.details},
        status_code=refusal.status,
    )


def install(app: FastAPI) -> None:
    for kind in (
        DomainError,
        RequestValidationError,
        HTTPException,
        WorkflowUpdateFailedError,
        RPCError,
        SQLAlchemyError,
        OSError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ):
        app.add_exception_handler(kind, _answer)
    app.add_middleware(AnswerEveryError)


class AnswerEveryError:
    """What no handler took still gets a JSON answer (500 internal_error), and the exception
    stops here, so the server keeps the client's connection open."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            refusal = _refusal(exc)
            metrics.refused(refusal.code, refusal.status)
            if started:
                log.exception("error after the answer started", exc_info=exc)
                return
            body = json.dumps(
                {"code": refusal.code, "message": refusal.message, "details": refusal.details}
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": refusal.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
