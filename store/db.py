"""Engine and sessions. One async_sessionmaker per process, sessions never expire on commit."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

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
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
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


@asynccontextmanager
async def raw_connection(db: Sessions) -> AsyncIterator[Any]:
    """A pooled connection's asyncpg connection, outside any transaction: each statement is its
    own (one round trip), and asyncpg keeps it prepared. For the hot paths only."""
    engine: AsyncEngine = db.kw["bind"]
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        yield raw.driver_connection
