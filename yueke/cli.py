"""`yueke dev | worker | api | migrate`."""

import argparse
import asyncio
import contextlib
import logging

import uvicorn

from yueke.settings import Settings


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
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    if args.command == "dev":
        from yueke.devstack import run

        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how the stack stops
            asyncio.run(run(settings, demo=args.demo))
    elif args.command == "worker":
        import worker

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(worker.run(_require_database(settings)))
    elif args.command == "api":
        _require_database(settings)
        uvicorn.run(
            "api.main:app_from_env",
            factory=True,
            host=settings.api_host,
            port=settings.api_port,
            workers=args.workers,
        )
    else:
        from store.migrate import upgrade

        upgrade(_require_database(settings).database_url or "")


def _require_database(settings: Settings) -> Settings:
    if not settings.database_url:
        raise SystemExit("set DATABASE_URL (postgresql://user:password@host:5432/database)")
    return settings
