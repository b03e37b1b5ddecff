"""Fake cancels (TMK-4, CC-4): a channel takes the student off a class with a full refund and
keeps the teacher's slot for itself (direction `channel`, direction_target the channel) until
30 minutes later or the class's start, whichever comes first, to place another student there;
then the flow's timer gives it back to general inventory.

The held slot's origin is the flow's id (`fake-cancel-{class_id}`). Booked by its channel while
held, the slot keeps its direction as the trace that the hold ended booked (it is booked, so the
direction no longer decides who may book it; a cancel of that class frees it as general). A hold
whose expiry has passed is general inventory for everyone at once, even before the timer's step
runs; a booking then makes the slot general.
"""

from datetime import datetime, timedelta

from sqlalchemy import and_, false, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from domain.channels import Actor
from domain.errors import ClassNotCancellable, ClassStarted
from domain.fake_cancel import FakeCancelInput, FakeCancelView
from domain.words import ClassState, Direction, HoldState, TimeslotState
from store import audit, ledger
from store.db import get_or_404
from store.models import Class, Timeslot

FLOW = "fake-cancel-"
# How long the slot stays the channel's (never past the class's start).
HOLD = timedelta(minutes=30)


def flow_id(class_id: int) -> str:
    """The hold's workflow id, also the origin of the held slot."""
    return f"{FLOW}{class_id}"


def bookable_by_channel(channel: str | None, now: datetime) -> ColumnElement[bool]:
    """A slot held for a channel: bookable by that channel while held, by anyone once expired."""
    return and_(
        Timeslot.direction == Direction.channel,
        or_(
            Timeslot.expires_at <= now,
            Timeslot.direction_target == channel if channel is not None else false(),
        ),
    )


async def fake_cancel(
    session: AsyncSession, cancel: FakeCancelInput, now: datetime
) -> FakeCancelView:
    """Cancel the booked class with a full refund and hold its slot for the caller's channel.

    409 class_not_cancellable if the class is not booked on a teacher's slot, 409
    class_started once it has started. A class starting within 30 minutes is held until its
    start."""
    cancelled: Class | None = await session.scalar(
        update(Class)
        .where(
            Class.id == cancel.class_id,
            Class.state == ClassState.booked,
            Class.timeslot_id.is_not(None),
            Class.start_at > now,
        )
        .values(state=ClassState.cancelled, refunded=True, updated_at=now)
        .returning(Class)
    )
    if cancelled is None:
        existing = await get_or_404(session, Class, "class", cancel.class_id)
        if existing.state is not ClassState.booked or existing.timeslot_id is None:
            raise ClassNotCancellable(
                "the class is not booked on a teacher's timeslot",
                class_id=cancel.class_id,
                state=existing.state.value,
            )
        raise ClassStarted("the class has already started", class_id=cancel.class_id)
    actor = cancel.actor
    await ledger.deposit(
        session,
        cancelled.student_id,
        ledger.charge_of(cancelled),
        "refund",
        actor,
        now,
        class_id=cancelled.id,
    )
    expires_at = min(now + HOLD, cancelled.start_at)
    slot = await session.scalar(
        update(Timeslot)
        .where(Timeslot.id == cancelled.timeslot_id)
        .values(
            state=TimeslotState.open,
            direction=Direction.channel,
            direction_target=actor.channel.value,
            expires_at=expires_at,
            origin=flow_id(cancelled.id),
            updated_at=now,
        )
        .returning(Timeslot)
    )
    assert slot is not None
    await audit.record(
        session,
        "timeslot",
        [slot.id],
        "held",
        actor,
        now,
        for_class=cancelled.id,
        channel=actor.channel.value,
        until=expires_at.isoformat(),
    )
    await audit.record(
        session,
        "class",
        [cancelled.id],
        "cancelled",
        actor,
        now,
        refunded=True,
        reason=cancel.reason,
        by_teacher=False,
        fake_cancel=True,
    )
    return FakeCancelView(
        class_id=cancelled.id,
        teacher_id=slot.teacher_id,
        student_id=cancelled.student_id,
        channel=actor.channel.value,
        timeslot_id=slot.id,
        start_at=slot.start_at,
        refunded=True,
        state=HoldState.holding,
        expires_at=expires_at,
        booked_class_id=None,
    )


def is_held(slot: Timeslot) -> bool:
    return slot.direction is Direction.channel


async def held_slot_taken(
    session: AsyncSession, slot: Timeslot, booked: Class, actor: Actor, now: datetime
) -> str | None:
    """Called in the booking transaction that took a channel-held slot: while held (its
    channel booked it), the hold ends booked and the flow's id comes back, to tell the flow
    once committed; once expired, it is a general booking and the slot becomes general."""
    if slot.expires_at is not None and slot.expires_at > now:
        await audit.record(
            session, "timeslot", [slot.id], "hold_booked", actor, now, class_id=booked.id
        )
        return slot.origin
    slot.direction, slot.direction_target, slot.expires_at = Direction.general, None, None
    return None


async def release(
    session: AsyncSession, class_id: int, actor: Actor, now: datetime
) -> tuple[HoldState, int | None]:
    """The timer's step: a slot still held goes back to general inventory (`expired`). One
    conditional UPDATE; a slot its channel booked first is left as it is (`booked`, with the
    class)."""
    released = await session.scalar(
        update(Timeslot)
        .where(
            Timeslot.origin == flow_id(class_id),
            Timeslot.state == TimeslotState.open,
            Timeslot.direction == Direction.channel,
        )
        .values(direction=Direction.general, direction_target=None, expires_at=None, updated_at=now)
        .returning(Timeslot.id)
    )
    if released is not None:
        await audit.record(session, "timeslot", [released], "hold_expired", actor, now)
        return HoldState.expired, None
    slot = await session.scalar(select(Timeslot).where(Timeslot.origin == flow_id(class_id)))
    if slot is None or slot.direction is not Direction.channel:
        return HoldState.expired, None
    booked = await session.scalar(
        select(Class.id)
        .where(Class.timeslot_id == slot.id, Class.id != class_id)
        .order_by(Class.id.desc())
        .limit(1)
    )
    return HoldState.booked, booked
