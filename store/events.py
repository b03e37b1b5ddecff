"""The event feed: the audit trail read in commit-safe order (docs/events.md).

A row's place is (`xid`, `id`): the transaction that wrote it, then its id. A reader sees only
rows of transactions older than its snapshot's xmin, all of which have ended, so a row that
commits later always sorts after every row already read: a cursor never skips one.
"""

from collections.abc import Collection
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import BadCursor
from domain.events import Cursor, Event

_READ = """
SELECT id, xid::text AS xid, type, entity, entity_id, student_id, teacher_ids, channel,
       actor_id, occurred_at, details
FROM audit_events
WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
  AND (CAST(:after_xid AS text) IS NULL
       OR (xid, id) > (CAST(CAST(:after_xid AS text) AS xid8), CAST(:after_id AS bigint)))
  AND (CAST(:types AS text[]) IS NULL OR type = ANY(CAST(:types AS text[])))
  AND {concern}
ORDER BY xid, id
LIMIT :limit
"""

_EVERYONE = text(_READ.format(concern="true"))
_STUDENT = text(_READ.format(concern="student_id = :student_id"))
_TEACHER = text(_READ.format(concern="teacher_ids @> ARRAY[CAST(:teacher_id AS bigint)]"))


def parse_cursor(raw: str) -> Cursor:
    """`<xid>-<id>` as `Event.cursor` gives it; anything else is `bad_cursor`."""
    xid, sep, row = raw.partition("-")
    if not (sep and xid.isdecimal() and row.isdecimal() and xid.isascii() and row.isascii()):
        raise BadCursor("the cursor is not one this feed gave", cursor=raw[:100])
    if int(xid) >= 2**63 or int(row) >= 2**63:
        raise BadCursor("the cursor is not one this feed gave", cursor=raw[:100])
    return Cursor(xid=int(xid), id=int(row))


def _event(row: Any) -> Event:
    return Event(
        id=row.id,
        cursor=str(Cursor(xid=int(row.xid), id=row.id)),
        type=row.type,
        entity=row.entity,
        entity_id=row.entity_id,
        student_id=row.student_id,
        teacher_ids=list(row.teacher_ids),
        channel=row.channel,
        actor_id=row.actor_id,
        occurred_at=row.occurred_at,
        payload=row.details,
    )


async def read(
    session: AsyncSession,
    *,
    after: Cursor | None,
    types: Collection[str] | None,
    limit: int,
    student_id: int | None = None,
    teacher_id: int | None = None,
) -> list[Event]:
    """Up to `limit` events after `after`, in feed order; only the student's (a parent's
    feed) or the teacher's (the teacher portal's) when given."""
    params: dict[str, Any] = {
        "after_xid": None if after is None else str(after.xid),
        "after_id": None if after is None else after.id,
        "types": None if types is None else sorted(types),
        "limit": limit,
    }
    if student_id is not None:
        statement, params["student_id"] = _STUDENT, student_id
    elif teacher_id is not None:
        statement, params["teacher_id"] = _TEACHER, teacher_id
    else:
        statement = _EVERYONE
    rows = await session.execute(statement, params)
    return [_event(row) for row in rows]


async def head(session: AsyncSession) -> Cursor:
    """A cursor past every row readable now: what a transaction still running or not yet
    begun writes sorts after it."""
    oldest = await session.scalar(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text"))
    return Cursor(xid=int(oldest or 1) - 1, id=2**63 - 1)
