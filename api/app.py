"""The FastAPI application: one engine and one Temporal client per process."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text
from temporalio.client import Client

from api import errors
from api.edges import Edges
from api.flows import Flows
from api.routes import (
    class_changes,
    class_requests,
    classes,
    contracts,
    dino_home,
    fake_cancels,
    finish,
    flows,
    history,
    learning_progress,
    make_up,
    money,
    open_classes,
    overbooking,
    people,
    products,
    stone_campaigns,
    teacher_cancels,
    timeslots,
    weekly_booking,
)
from store.db import create_engine, sessions
from yueke.settings import Settings


def create_app(
    settings: Settings,
    *,
    temporal_client: Client | None = None,
    clock: Callable[[], datetime | Awaitable[datetime]] = lambda: datetime.now(UTC),
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert settings.database_url, "DATABASE_URL is required"
        engine = create_engine(
            settings.database_url,
            application_name="yueke-api",
            pool_size=settings.db_pool_size,
            pool_timeout=settings.db_pool_timeout,
        )
        app.state.sessions = sessions(engine)
        app.state.flows = Flows(settings, temporal_client)
        yield
        await engine.dispose()

    app = FastAPI(
        title="Yueke (约课) booking API",
        version="1",
        description="Class booking for the upstream channels. Every route names the operation "
        "IDs (docs/operations.md) it covers and the channels allowed to call it. Authenticate with "
        "`Authorization: Bearer <channel key>` and `X-Actor-Id: <acting user>`; POSTs take an "
        "optional `Idempotency-Key`.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    errors.install(app)
    app.add_middleware(
        Edges,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_seconds=settings.body_timeout_seconds,
    )
    for module in (
        people,
        timeslots,
        classes,
        money,
        class_requests,
        teacher_cancels,
        fake_cancels,
        contracts,
        weekly_booking,
        overbooking,
        finish,
        history,
        dino_home,
        make_up,
        learning_progress,
        class_changes,
        products,
        stone_campaigns,
        open_classes,
        flows,
    ):
        app.include_router(module.router)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> JSONResponse:
        """The database and Temporal, each `ok` or the error; 503 unless both are ok, with the
        code of the first that is not (as every 503)."""
        checks: dict[str, str] = {}
        try:
            async with app.state.sessions() as session:
                await session.execute(text("select 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {exc.__class__.__name__}: {exc}"
        try:
            client = await asyncio.wait_for(app.state.flows.client(), 5)
            await asyncio.wait_for(client.service_client.check_health(), 5)
            checks["temporal"] = "ok"
        except Exception as exc:
            checks["temporal"] = f"error: {exc.__class__.__name__}: {exc}"
        down = [name for name, check in checks.items() if check != "ok"]
        if not down:
            return JSONResponse(checks)
        return JSONResponse({"code": f"{down[0]}_unavailable", **checks}, status_code=503)

    return app
