"""Bring a database's schema to the newest revision (`yueke migrate`, the dev stack, tests)."""

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations
from store.db import async_url

MIGRATIONS = Path(migrations.__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", async_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


async def upgrade_async(database_url: str) -> None:
    """env.py runs its own event loop, so from async code it runs in a thread."""
    await asyncio.to_thread(upgrade, database_url)
