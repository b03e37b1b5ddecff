"""Product-directed slots (产品定向, INT-1): the dual-teacher / international channel reserves a
teacher's open general slots for one product line and releases them back to general inventory.

A reserved slot is `direction = 'product'`, `direction_target` the product. Only a booking made
for that product takes it (`inventory.take_slot`, `classes.BOOK_AT_ONCE`); availability shows it
only to that product's queries; the flows that take general slots (over-booking, teacher
reservation, auto-booking, claims for holds and contracts) never see it. A product class
cancelled gives its slot back to the product. Both changes are one guarded UPDATE each: all the
slots named, or none.
"""

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor
from domain.errors import DomainError, NotFound, NotProductSlot, SlotReserved
from domain.words import Direction, Product, TimeslotState
from store import audit, inventory
from store.models import Timeslot
from store.people import get_teacher


async def reserve(
    session: AsyncSession,
    *,
    teacher_id: int,
    timeslot_ids: Sequence[int],
    product: Product,
    actor: Actor,
    now: datetime,
) -> list[Timeslot]:
    """The teacher's open slots directed at the product: general ones, or already its own.
    None changes if any is booked, gone, another teacher's or directed at someone else."""
    reserved = await _redirect(
        session,
        teacher_id=teacher_id,
        timeslot_ids=timeslot_ids,
        directed=or_(
            Timeslot.direction == Direction.general,
            and_(
                Timeslot.direction == Direction.product,
                Timeslot.direction_target == product.value,
            ),
        ),
        to=(Direction.product, product.value),
        refusal=lambda slot: SlotReserved(
            "the timeslot is directed at someone else",
            timeslot_id=slot.id,
            direction=slot.direction.value,
            direction_target=slot.direction_target,
        ),
        now=now,
    )
    await audit.record(
        session, "timeslot", _ids(reserved), "directed", actor, now, product=product.value
    )
    return reserved


async def release(
    session: AsyncSession,
    *,
    teacher_id: int,
    timeslot_ids: Sequence[int],
    actor: Actor,
    now: datetime,
) -> list[Timeslot]:
    """The teacher's open product-directed slots back to general inventory; none if any of them
    is booked, gone, another teacher's or not directed at a product."""
    released = await _redirect(
        session,
        teacher_id=teacher_id,
        timeslot_ids=timeslot_ids,
        directed=Timeslot.direction == Direction.product,
        to=(Direction.general, None),
        refusal=lambda slot: NotProductSlot(
            "the timeslot is not directed at a product",
            timeslot_id=slot.id,
            direction=slot.direction.value,
        ),
        now=now,
    )
    await audit.record(session, "timeslot", _ids(released), "released", actor, now)
    return released


async def _redirect(
    session: AsyncSession,
    *,
    teacher_id: int,
    timeslot_ids: Sequence[int],
    directed: ColumnElement[bool],
    to: tuple[Direction, str | None],
    refusal: Callable[[Timeslot], DomainError],
    now: datetime,
) -> list[Timeslot]:
    """All the slots named, open, the teacher's and `directed`, given the direction `to` in one
    guarded UPDATE, by start; or none, refused for the first slot the UPDATE left: unknown or
    another teacher's (404), not open, or else its direction (`refusal`)."""
    await get_teacher(session, teacher_id)
    wanted = set(timeslot_ids)
    direction, target = to
    moved = list(
        await session.scalars(
            update(Timeslot)
            .where(
                Timeslot.id.in_(wanted),
                Timeslot.teacher_id == teacher_id,
                Timeslot.state == TimeslotState.open,
                directed,
            )
            .values(direction=direction, direction_target=target, updated_at=now)
            .returning(Timeslot)
        )
    )
    if missing := wanted - {slot.id for slot in moved}:
        slot = await inventory.get_timeslot(session, min(missing))
        if slot.teacher_id != teacher_id:
            raise NotFound("timeslot", slot.id)
        if slot.state is not TimeslotState.open:
            raise inventory.not_open(slot)
        raise refusal(slot)
    return sorted(moved, key=lambda slot: slot.start_at)


def _ids(slots: list[Timeslot]) -> list[int]:
    return sorted(slot.id for slot in slots)
