"""The audit trail: one row per change, in the changing transaction; also the event feed's
outbox (store/events.py, docs/events.md)."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor
from store.models import AuditEvent

# The head of an audit insert inside a one-statement SQL path (a CTE or INSERT … SELECT);
# the ORM paths call `record`. A trigger fills the student and teachers a row concerns from
# its class, timeslot, request, hold, contract, open class or enrolment; a statement that
# inserts the class itself names them (`INSERT_CONCERNING`), as the trigger cannot see that
# class yet.
INSERT = (
    "INSERT INTO audit_events (entity, entity_id, action, channel, actor_id, occurred_at, details)"
)
INSERT_CONCERNING = (
    "INSERT INTO audit_events (entity, entity_id, action, channel, actor_id, occurred_at, details,"
    " student_id, teacher_ids)"
)


async def record(
    session: AsyncSession,
    entity: str,
    entity_ids: Iterable[int],
    action: str,
    actor: Actor,
    now: datetime,
    **details: Any,
) -> None:
    rows = [_row(entity, entity_id, action, actor, now, details) for entity_id in entity_ids]
    if rows:
        await session.execute(insert(AuditEvent), rows)


async def record_concerning(
    session: AsyncSession,
    student_id: int,
    entity: str,
    entity_id: int,
    action: str,
    actor: Actor,
    now: datetime,
    details: dict[str, Any],
) -> None:
    """A row concerning `student_id` (and no teacher), not the student the trigger would find
    from its entity: one the change took away from it."""
    row = _row(entity, entity_id, action, actor, now, details)
    await session.execute(insert(AuditEvent), [{**row, "student_id": student_id}])


def _row(
    entity: str, entity_id: int, action: str, actor: Actor, now: datetime, details: dict[str, Any]
) -> dict[str, Any]:
    return {
        "entity": entity,
        "entity_id": entity_id,
        "action": action,
        "channel": actor.channel.value,
        "actor_id": actor.id,
        "occurred_at": now,
        "details": details,
    }


async def trail(session: AsyncSession, entity: str, entity_id: int) -> list[AuditEvent]:
    rows = await session.scalars(
        select(AuditEvent)
        .where(AuditEvent.entity == entity, AuditEvent.entity_id == entity_id)
        .order_by(AuditEvent.id)
    )
    return list(rows)
