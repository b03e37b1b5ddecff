"""Product-directed slots (产品定向, INT-1): the dual-teacher / international channel reserves a
teacher's open general slots for one product line and releases them back to general inventory.

A reserved slot is `direction = 'product'`, `direction_target` the product. Only a booking made
for that product takes it (`inventory.take_slot`, `classes.BOOK_AT_ONCE`); availability shows it
only to that product's queries; the flows that take general slots (over-booking, teacher
reservation, auto-booking, claims for holds and contracts) never see it. A product class
cancelled gives its slot back to the product. Both changes are one guarded UPDATE each: all the
slots named, or none.
"""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor
from domain.errors import NotFound, NotProductSlot, SlotReserved
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
    await get_teacher(session, teacher_id)
    wanted = set(timeslot_ids)
    reserved = list(
        await session.scalars(
            update(Timeslot)
            .where(
                Timeslot.id.in_(wanted),
                Timeslot.teacher_id == teacher_id,
                Timeslot.state == TimeslotState.open,
                or_(
                    Timeslot.direction == Direction.general,
                    and_(
                        Timeslot.direction == Direction.product,
                        Timeslot.direction_target == product.value,
                    ),
                ),
            )
            .values(direction=Direction.product, direction_target=product.value, updated_at=now)
            .returning(Timeslot)
        )
    )
    if missing := wanted - {slot.id for slot in reserved}:
        slot = await _owned(session, min(missing), teacher_id)
        if slot.state is not TimeslotState.open:
            raise inventory.not_open(slot)
        raise SlotReserved(
            "the timeslot is directed at someone else",
            timeslot_id=slot.id,
            direction=slot.direction.value,
            direction_target=slot.direction_target,
        )
    await audit.record(
        session, "timeslot", sorted(wanted), "directed", actor, now, product=product.value
    )
    return sorted(reserved, key=lambda slot: slot.start_at)


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
    await get_teacher(session, teacher_id)
    wanted = set(timeslot_ids)
    released = list(
        await session.scalars(
            update(Timeslot)
            .where(
                Timeslot.id.in_(wanted),
                Timeslot.teacher_id == teacher_id,
                Timeslot.state == TimeslotState.open,
                Timeslot.direction == Direction.product,
            )
            .values(direction=Direction.general, direction_target=None, updated_at=now)
            .returning(Timeslot)
        )
    )
    if missing := wanted - {slot.id for slot in released}:
        slot = await _owned(session, min(missing), teacher_id)
        if slot.state is not TimeslotState.open:
            raise inventory.not_open(slot)
        raise NotProductSlot(
            "the timeslot is not directed at a product",
            timeslot_id=slot.id,
            direction=slot.direction.value,
        )
    await audit.record(session, "timeslot", sorted(wanted), "released", actor, now)
    return sorted(released, key=lambda slot: slot.start_at)


async def _owned(session: AsyncSession, timeslot_id: int, teacher_id: int) -> Timeslot:
    slot = await inventory.get_timeslot(session, timeslot_id)
    if slot.teacher_id != teacher_id:
        raise NotFound("timeslot", slot.id)
    return slot
