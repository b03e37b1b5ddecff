"""Operation keys: a retried request or activity gets the first result and acts once.

The key is claimed by an INSERT in the same transaction as the work it guards: a concurrent
retry waits on the unique key until the first commits (then replays its result) or rolls back
(then does the work itself).

A call that waits on a workflow cannot hold that transaction open while it waits (a slow
Temporal would empty the connection pool): it claims its key in a transaction of its own
(`claim_for_flow`), calls the flow with an update id derived from the key, and remembers the
answer in another (`remember_answer`).
"""

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import delete, select, true, tuple_, update
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
    also_hash: str | None = None,
) -> Out:
    """Run op in one transaction; under a key already done, return the first result instead.
    `also_hash`: another hash of the same request that a key may have been written with."""
    async with sessions.begin() as session:
        if key is not None:
            first = await claim(session, scope, key, request_hash, now, also_hash)
            if first is not None:
                return out.model_validate(first)
        result = await op(session)
        if key is not None:
            await remember(session, scope, key, result.model_dump(mode="json"))
        return result


async def claim(
    session: AsyncSession,
    scope: str,
    key: str,
    request_hash: str,
    now: datetime,
    also_hash: str | None = None,
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
    if first.request_hash not in (request_hash, also_hash):
        raise IdempotencyKeyReused("this key was used with another request", idempotency_key=key)
    return first.response


async def remember(session: AsyncSession, scope: str, key: str, response: dict[str, Any]) -> None:
    await session.execute(
        update(OperationKey)
        .where(OperationKey.scope == scope, OperationKey.key == key)
        .values(response=response)
    )


@dataclass
class FlowClaim:
    """The answer of a first call to replay, or the id the first call reserved for its flow."""

    response: dict[str, Any] | None
    reserved_id: int | None


async def claim_for_flow(
    sessions: Sessions,
    *,
    scope: str,
    key: str,
    request_hash: str,
    now: datetime,
    reserve: Callable[[AsyncSession], Awaitable[int]] | None,
) -> FlowClaim:
    """Claim the key, committed before the flow is called. The first caller reserves the new
    flow's id (`reserve` also refuses what can be refused at once); a retry gets the first
    answer, or, while that is not known yet, the same reserved id."""
    async with sessions.begin() as session:
        first = await _first(session, scope, key)
        if first is None:
            reserved = await reserve(session) if reserve is not None else None
            claimed = await session.scalar(
                insert(OperationKey)
                .values(
                    scope=scope,
                    key=key,
                    request_hash=request_hash,
                    created_at=now,
                    reserved_id=reserved,
                )
                .on_conflict_do_nothing()
                .returning(OperationKey.key)
            )
            if claimed is not None:
                return FlowClaim(response=None, reserved_id=reserved)
            first = await _first(session, scope, key)
            assert first is not None
        if first.request_hash != request_hash:
            raise IdempotencyKeyReused(
                "this key was used with another request", idempotency_key=key
            )
        return FlowClaim(response=first.response, reserved_id=first.reserved_id)


async def _first(session: AsyncSession, scope: str, key: str) -> OperationKey | None:
    return await session.scalar(
        select(OperationKey)
        .where(OperationKey.scope == scope, OperationKey.key == key)
        .execution_options(populate_existing=True)
    )


async def remember_answer(
    sessions: Sessions, scope: str, key: str, response: dict[str, Any]
) -> None:
    async with sessions.begin() as session:
        await remember(session, scope, key, response)


async def forget(sessions: Sessions, scope: str, key: str, *, answered: bool = False) -> None:
    """A refused call is not remembered: retried with the same key, it is tried again. A call
    whose work was taken back (`answered`) forgets its remembered answer too."""
    async with sessions.begin() as session:
        await session.execute(
            delete(OperationKey).where(
                OperationKey.scope == scope,
                OperationKey.key == key,
                true() if answered else OperationKey.response.is_(None),
            )
        )


async def delete_expired(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Delete up to `limit` keys made before `before`, oldest first; how many went. Keys another
    transaction holds are passed over (the next batch or run takes them)."""
    expired = (
        select(OperationKey.scope, OperationKey.key)
        .where(OperationKey.created_at < before)
        .order_by(OperationKey.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    deleted = await session.execute(
        delete(OperationKey)
        .where(tuple_(OperationKey.scope, OperationKey.key).in_(expired))
        .returning(OperationKey.key)
    )
    return len(deleted.all())
