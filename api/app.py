"""The FastAPI application: one engine and one Temporal client per process."""

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import text
from temporalio.client import Client

from api import errors, metrics
from api.edges import Edges
from api.flows import Flows
from api.routes import (
    class_changes,
    class_requests,
    classes,
    contracts,
    dino_home,
    events,
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
    webhooks,
    weekly_booking,
)
from store.db import create_engine, sessions
from yueke import telemetry
from yueke.settings import Settings

log = logging.getLogger("yueke.api")


def _settle_heap() -> None:
    """In an API server process, after start-up: what start-up built lives as long as the
    process, so it is frozen out of the collector's sight (a full collection walking it paused
    every request in flight), and young collections run every 20,000 allocations rather than
    700 (a request makes thousands). Figures in bench/README.md. Not in a process that builds
    many apps (the tests), whose garbage it would keep longer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def create_app(
    settings: Settings,
    *,
    temporal_client: Client | None = None,
    clock: Callable[[], datetime | Awaitable[datetime]] = lambda: datetime.now(UTC),
    tracer_provider: TracerProvider | None = None,
    settle_heap: bool = False,
) -> FastAPI:
    """`tracer_provider`: where the spans go (the tests' in-memory exporter); by default the
    OTLP exporter of the settings, or none. `settle_heap`: for the server processes
    (`yueke api`, the benchmarks' server), see `_settle_heap`."""
    tracing = tracer_provider or telemetry.tracer_provider(settings, "yueke-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert settings.database_url, "DATABASE_URL is required"
        if not settings.channel_keys:
            log.warning(
                "no channel keys are set (YUEKE_CHANNEL_KEYS): every call will be refused "
                "401 unauthenticated"
            )
        engine = create_engine(
            settings.database_url,
            application_name="yueke-api",
            pool_size=settings.db_pool_size,
            pool_timeout=settings.db_pool_timeout,
        )
        app.state.sessions = sessions(engine)
        app.state.flows = Flows(
            settings, temporal_client, interceptors=telemetry.temporal_interceptors(tracing)
        )
        if settle_heap:
            _settle_heap()
        yield
        await app.state.flows.close()
        await engine.dispose()
        if tracing is not None and tracer_provider is None:
            tracing.shutdown()

    # /docs and /redoc with Swagger UI's and ReDoc's files from the fastapi-offline package.
    app = FastAPIOffline(
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
        events,
        webhooks,
    ):
        app.include_router(module.router)
    metrics.install(app)
    telemetry.trace_requests(app, tracing)

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
