"""Every refusal as JSON {"code", "message", "details"}: never a 500 for bad input."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from domain.errors import DomainError
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


def error_body(exc: Exception) -> dict[str, Any]:
    """One item's error inside a batch response."""
    return _refusal(exc).model_dump()


async def _answer(_: Request, exc: Exception) -> JSONResponse:
    refusal = _refusal(exc)
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
        DBAPIError,
    ):
        app.add_exception_handler(kind, _answer)
