"""Operation keys: a retried request or activity gets the first result and acts once.

The key is claimed by an INSERT in the same transaction as the work it guards: a concurrent
retry waits on the unique key until the first commits (then replays its result) or rolls back
(then does the work itself).
"""

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import IdempotencyKeyReused
from store.db import Sessions
from store.models import OperationKey

Out = TypeVar("Out", bound=BaseModel)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def once(
    sessions: Sessions,
    *,
    scope: str,
    key: str | None,
    request_hash: str,
    now: datetime,
    out: type[Out],
    op: Callable[[AsyncSession], Awaitable[Out]],
) -> Out:
    """Run op in one transaction; under a key already done, return the first result instead."""
    async with sessions.begin() as session:
        if key is not None:
            first = await claim(session, scope, key, request_hash, now)
            if first is not None:
                return out.model_validate(first)
        result = await op(session)
        if key is not None:
            await remember(session, scope, key, result.model_dump(mode="json"))
        return result


async def claim(
    session: AsyncSession, scope: str, key: str, request_hash: str, now: datetime
) -> dict[str, Any] | None:
    """None if this caller does the work; else the stored result of the first one."""
    claimed = await session.scalar(
        insert(OperationKey)
        .values(scope=scope, key=key, request_hash=request_hash, created_at=now)
        .on_conflict_do_nothing()
        .returning(OperationKey.key)
    )
    if claimed is not None:
        return None
    first = await session.get_one(OperationKey, (scope, key))
    if first.request_hash != request_hash:
        raise IdempotencyKeyReused("this key was used with another request", idempotency_key=key)
    return first.response


async def remember(session: AsyncSession, scope: str, key: str, response: dict[str, Any]) -> None:
    await session.execute(
        update(OperationKey)
        .where(OperationKey.scope == scope, OperationKey.key == key)
        .values(response=response)
    )
