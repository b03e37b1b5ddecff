"""The migrations build the schema the models describe (tables, columns, types, indexes,
foreign keys), so that code written against store/models.py runs on a migrated database; and
every migration goes down and up again."""

import asyncio
import uuid
from typing import Any

import asyncpg
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from store.db import async_url
from store.migrate import alembic_config
from store.models import Base


def _ours(name: str | None, kind: str, _parent: Any) -> bool:
    return not (kind == "table" and name == "alembic_version")


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": _ours}
    )
    return list(compare_metadata(context, Base.metadata))


async def test_the_migrated_schema_is_the_models_schema(database_url: str) -> None:
    engine = create_async_engine(async_url(database_url))
    async with engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    await engine.dispose()
    assert differences == []


async def test_every_migration_goes_down_and_up_again(server_url: str) -> None:
    name = f"yueke_migrations_{uuid.uuid4().hex[:10]}"
    plain = server_url.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(plain)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base, _, query = plain.partition("?")
    url = base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")
    try:
        config = alembic_config(url)
        for step in (
            lambda: command.upgrade(config, "head"),
            lambda: command.downgrade(config, "base"),
            lambda: command.upgrade(config, "head"),
        ):
            await asyncio.to_thread(step)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
