"""The event feed: every change, in commit-safe order, for the channels allowed to see it."""

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context, caller, describe
from domain.channels import Operation
from domain.errors import UnknownEventType
from domain.events import TYPES, Event
from store import events

router = APIRouter(prefix="/v1", tags=["events"])


class EventPage(BaseModel):
    """`next_cursor`: the `after` of the next call (the last event's cursor, or the `after`
    given when nothing new has committed)."""

    events: list[Event]
    next_cursor: str | None


def event_types(raw: list[str] | None) -> frozenset[str] | None:
    """`types=a,b` or `types=a&types=b`; each must be one of the feed's types."""
    if not raw:
        return None
    wanted = frozenset(t.strip() for part in raw for t in part.split(",") if t.strip())
    unknown = sorted(wanted - TYPES)
    if unknown:
        raise UnknownEventType(
            "unknown event type (docs/events.md lists them)", unknown=unknown[:20]
        )
    return wanted or None


@router.get(
    "/events",
    **describe(
        Operation.read_events,
        [],
        "The event feed: every change to a class, timeslot, request, hold, contract, course "
        "enrolment or money, oldest first, each written in the transaction of its change. "
        "Poll with `after` = the last `next_cursor`: a cursor never skips an event that "
        "commits later (docs/events.md). `types` (comma-separated or repeated) keeps those "
        "types: 422 unknown_event_type for one not in the list; 422 bad_cursor. A parent "
        "channel sees only its own student's events, the teacher portal only its own "
        "teacher's, staff channels all.",
    ),
)
async def read_events(
    after: Annotated[str | None, Query(max_length=60)] = None,
    types: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ctx: Context = caller(Operation.read_events),
) -> EventPage:
    cursor = events.parse_cursor(after) if after is not None else None
    wanted = event_types(types)

    async def op(session: AsyncSession) -> list[Event]:
        return await events.read(
            session,
            after=cursor,
            types=wanted,
            limit=limit,
            student_id=ctx.parents_student,
            teacher_id=ctx.portals_teacher,
        )

    found = await ctx.read(op)
    return EventPage(events=found, next_cursor=found[-1].cursor if found else after)
