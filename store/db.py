"""Engine and sessions. One async_sessionmaker per process, sessions never expire on commit."""

from typing import Any, TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from domain.errors import NotFound

Sessions = async_sessionmaker[AsyncSession]
Row = TypeVar("Row")


def async_url(url: str) -> str:
    """Accept a plain postgresql:// URL (as pgserver and most hosts give) for asyncpg."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    return url


def create_engine(
    url: str, *, application_name: str, pool_size: int = 10, pool_timeout: float = 30.0
) -> AsyncEngine:
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
        connect_args={"server_settings": {"application_name": application_name}},
    )


def sessions(engine: AsyncEngine) -> Sessions:
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_or_404(
    session: AsyncSession, model: type[Row], entity: str, key: Any, *, lock: bool = False
) -> Row:
    """The row of that primary key, or the refusal `{entity}_not_found` (404)."""
    row = await session.get(model, key, with_for_update=lock)
    if row is None:
        raise NotFound(entity, key)
    return row


async def fetch_at_once(db: Sessions, method: str, statement: str, *args: Any) -> Any:
    """One statement on a pooled connection's asyncpg connection, outside any transaction (its
    own, one round trip; asyncpg keeps it prepared): `method` is asyncpg's `fetchrow` or
    `fetchval`. For the hot paths only.

    Connections are not pinged at checkout (a round trip per request). A connection the server
    dropped fails its statement instead: it is invalidated with every older one, and the
    statement is sent once more on a fresh connection."""
    engine: AsyncEngine = db.kw["bind"]
    for attempt in (1, 2):
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            try:
                return await getattr(raw.driver_connection, method)(statement, *args)
            except (
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,
                asyncpg.PostgresError,
            ) as error:
                if attempt == 2 or not _dropped(error):
                    raise
                await connection.invalidate(error)
    raise AssertionError("unreachable")


def _dropped(error: Exception) -> bool:
    """The connection was closed (asyncpg saw it go), or the server ends it (shutdown,
    terminated backend): not the statement's fault."""
    if isinstance(error, asyncpg.DataError):
        return False
    if isinstance(error, asyncpg.InterfaceError | asyncpg.InternalClientError):
        return True  # "connection is closed"; a protocol left mid-message by the server
    return (getattr(error, "sqlstate", None) or "").startswith(("08", "57P"))
