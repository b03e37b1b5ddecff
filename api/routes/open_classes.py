"""Open classes (公开课): curriculum and the classroom make them on a teacher's timeslot, describe,
list and price them (CUR-2, CLS-1); students book seats up to the capacity (PAR-2, H5-2) and
cancel them as any class (PAR-3, H5-5); after the class, replays are bought (PAR-2)."""

from datetime import datetime
from typing import Annotated, Self

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context, caller, describe
from api.schemas import ClassOut
from api.types import Id, IdParam, Text, UtcDatetime
from domain.channels import PARENTS, Operation
from domain.open_class import Capacity, ReplayPrice, over_at
from domain.payment import Payment
from domain.words import Asset
from store import open_classes
from store.models import OpenClass

router = APIRouter(prefix="/v1", tags=["open classes"])

Title = Annotated[Text, Field(min_length=1, max_length=200)]
Description = Annotated[Text, Field(max_length=4000)]


class NewOpenClass(BaseModel):
    timeslot_id: Id
    title: Title
    description: Description = ""
    capacity: Capacity


class EditOpenClass(BaseModel):
    title: Title | None = None
    description: Description | None = None
    capacity: Capacity | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.title is None and self.description is None and self.capacity is None:
            raise ValueError("name at least one of title, description, capacity")
        return self


class BookSeat(BaseModel):
    student_id: Id
    payment: Payment = Payment()


class BuyReplay(BaseModel):
    student_id: Id


class OpenClassOut(BaseModel):
    id: int
    timeslot_id: int
    teacher_id: int
    start_at: datetime
    title: str
    description: str
    capacity: int
    seats_taken: int
    seats_left: int
    listed: bool
    replay_price: ReplayPrice | None
    over_at: datetime = Field(description="when the class is over and its replay can be had")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, found: OpenClass) -> "OpenClassOut":
        price = None
        if found.replay_asset is not None and found.replay_price is not None:
            price = ReplayPrice(asset=found.replay_asset, amount=found.replay_price)
        return cls(
            id=found.id,
            timeslot_id=found.timeslot_id,
            teacher_id=found.teacher_id,
            start_at=found.start_at,
            title=found.title,
            description=found.description,
            capacity=found.capacity,
            seats_taken=found.seats_taken,
            seats_left=found.capacity - found.seats_taken,
            listed=found.listed,
            replay_price=price,
            over_at=over_at(found.start_at),
            created_at=found.created_at,
            updated_at=found.updated_at,
        )


class ReplayOut(BaseModel):
    open_class_id: int
    student_id: int
    title: str
    start_at: datetime
    attended: bool = Field(description="the student had a seat: the replay was free")
    payment_asset: Asset | None
    payment_amount: int
    bought_at: datetime

    @classmethod
    def of(cls, found: open_classes.Replay) -> "ReplayOut":
        return cls(
            open_class_id=found.open_class.id,
            student_id=found.replay.student_id,
            title=found.open_class.title,
            start_at=found.open_class.start_at,
            attended=found.replay.attended,
            payment_asset=found.replay.payment_asset,
            payment_amount=found.replay.payment_amount,
            bought_at=found.replay.created_at,
        )


@router.post(
    "/open-classes",
    status_code=201,
    **describe(
        Operation.create_open_class,
        ["CUR-2", "CLS-1"],
        "Make an open class on a teacher's open general timeslot (the teacher must be free "
        "then): the slot becomes the class's (state `booked`). Title, description and capacity "
        "(seats, 1 to 10,000). Made unlisted: list it for parents to see and book. 409 "
        "slot_already_booked / slot_not_open / slot_reserved, 422 in_past.",
    ),
)
async def create_open_class(
    body: NewOpenClass, ctx: Context = caller(Operation.create_open_class)
) -> OpenClassOut:
    async def op(session: AsyncSession) -> OpenClassOut:
        made = await open_classes.create(
            session,
            timeslot_id=body.timeslot_id,
            title=body.title,
            description=body.description,
            capacity=body.capacity,
            actor=ctx.actor,
            now=ctx.now,
        )
        return OpenClassOut.of(made)

    return await ctx.run(body, OpenClassOut, op)


@router.get(
    "/open-classes",
    **describe(
        Operation.read_open_classes,
        ["PAR-2", "H5-2", "CUR-2", "CLS-1"],
        "Open classes by start, with their seats left. Parents see the listed classes not yet "
        "started (and `listed` is ignored); the other channels every class, or only the listed "
        "(`listed=true`) or delisted (`listed=false`) ones.",
    ),
)
async def list_open_classes(
    listed: bool | None = None,
    start_from: UtcDatetime | None = None,
    start_to: UtcDatetime | None = None,
    limit: int = Query(100, ge=1, le=1000),
    ctx: Context = caller(Operation.read_open_classes),
) -> list[OpenClassOut]:
    parent = ctx.actor.channel in PARENTS

    async def op(session: AsyncSession) -> list[OpenClassOut]:
        found = await open_classes.listing(
            session,
            upcoming_listed_at=ctx.now if parent else None,
            listed=listed,
            start_from=start_from,
            start_to=start_to,
            limit=limit,
        )
        return [OpenClassOut.of(c) for c in found]

    return await ctx.read(op)


@router.get(
    "/open-classes/{open_class_id}",
    **describe(
        Operation.read_open_classes,
        ["PAR-2", "H5-2", "CUR-2", "CLS-1"],
        "An open class with its seats left; for parents only a listed one (else 404).",
    ),
)
async def read_open_class(
    open_class_id: IdParam, ctx: Context = caller(Operation.read_open_classes)
) -> OpenClassOut:
    async def op(session: AsyncSession) -> OpenClassOut:
        found = await open_classes.get(
            session, open_class_id, listed_only=ctx.actor.channel in PARENTS
        )
        return OpenClassOut.of(found)

    return await ctx.read(op)


@router.patch(
    "/open-classes/{open_class_id}",
    **describe(
        Operation.manage_open_class,
        ["CUR-2", "CLS-1"],
        "Edit title, description or capacity before the start. While no seat is taken, any of "
        "them; once one is, only a capacity at least the current one (409 "
        "open_class_has_seats). 409 class_started.",
    ),
)
async def edit_open_class(
    open_class_id: IdParam,
    body: EditOpenClass,
    ctx: Context = caller(Operation.manage_open_class),
) -> OpenClassOut:
    async def op(session: AsyncSession) -> OpenClassOut:
        edited = await open_classes.edit(
            session,
            open_class_id,
            title=body.title,
            description=body.description,
            capacity=body.capacity,
            actor=ctx.actor,
            now=ctx.now,
        )
        return OpenClassOut.of(edited)

    return await ctx.run(body, OpenClassOut, op)


async def _set_listed(open_class_id: int, listed: bool, ctx: Context) -> OpenClassOut:
    async def op(session: AsyncSession) -> OpenClassOut:
        changed = await open_classes.set_listed(
            session, open_class_id, listed=listed, actor=ctx.actor, now=ctx.now
        )
        return OpenClassOut.of(changed)

    return await ctx.run(None, OpenClassOut, op)


@router.post(
    "/open-classes/{open_class_id}/list",
    **describe(
        Operation.manage_open_class,
        ["CUR-2", "CLS-1"],
        "List the open class before its start: parents see it and book seats. 409 class_started.",
    ),
)
async def list_open_class(
    open_class_id: IdParam, ctx: Context = caller(Operation.manage_open_class)
) -> OpenClassOut:
    return await _set_listed(open_class_id, True, ctx)


@router.post(
    "/open-classes/{open_class_id}/delist",
    **describe(
        Operation.manage_open_class,
        ["CUR-2", "CLS-1"],
        "Delist the open class before its start: parents no longer see it, and booking it is "
        "409 open_class_not_listed; seats taken stay. 409 class_started.",
    ),
)
async def delist_open_class(
    open_class_id: IdParam, ctx: Context = caller(Operation.manage_open_class)
) -> OpenClassOut:
    return await _set_listed(open_class_id, False, ctx)


@router.put(
    "/open-classes/{open_class_id}/replay-price",
    **describe(
        Operation.manage_open_class,
        ["CUR-2"],
        "Set the replay's price: credits of course type `open`, or energy stones. Any time; "
        "replays bought keep what they paid.",
    ),
)
async def price_replay(
    open_class_id: IdParam, body: ReplayPrice, ctx: Context = caller(Operation.manage_open_class)
) -> OpenClassOut:
    async def op(session: AsyncSession) -> OpenClassOut:
        changed = await open_classes.set_replay_price(
            session, open_class_id, price=body, actor=ctx.actor, now=ctx.now
        )
        return OpenClassOut.of(changed)

    return await ctx.run(body, OpenClassOut, op)


@router.post(
    "/open-classes/{open_class_id}/seats",
    status_code=201,
    **describe(
        Operation.book_open_class,
        ["PAR-2", "H5-2", "CLS-1"],
        "Book a seat for a student: a class of course type `open` (its `open_class_id` set, no "
        "timeslot of its own), paid with credit or a coupon as any booking (stones: 422 "
        "payment_not_accepted), at least 1 h before the start. Cancel it as any class "
        "(POST /v1/classes/{id}/cancel: refunded at least 24 h ahead), which frees the seat. "
        "409 open_class_full, open_class_not_listed (for parents a class not listed is 404, "
        "as unknown), already_seated, student_busy (a class elsewhere then), class_started, "
        "insufficient_balance; 422 outside_booking_window.",
    ),
)
async def book_seat(
    open_class_id: IdParam, body: BookSeat, ctx: Context = caller(Operation.book_open_class)
) -> ClassOut:
    ctx.acts_for_student(body.student_id)

    async def op(session: AsyncSession) -> ClassOut:
        booked = await open_classes.book_seat(
            session,
            open_class_id=open_class_id,
            student_id=body.student_id,
            payment=body.payment,
            actor=ctx.actor,
            now=ctx.now,
            rules=ctx.rules,
            listed_only=ctx.actor.channel in PARENTS,
        )
        return ClassOut.model_validate(booked)

    return await ctx.run(body, ClassOut, op)


@router.post(
    "/open-classes/{open_class_id}/replays",
    status_code=201,
    **describe(
        Operation.buy_replay,
        ["PAR-2", "CLS-1"],
        "Buy the replay of an open class that is over, at its price; a student who had a seat "
        "(not cancelled) gets it free. 409 open_class_not_over, replay_not_for_sale, "
        "replay_already_bought, insufficient_balance.",
    ),
)
async def buy_replay(
    open_class_id: IdParam, body: BuyReplay, ctx: Context = caller(Operation.buy_replay)
) -> ReplayOut:
    ctx.acts_for_student(body.student_id)

    async def op(session: AsyncSession) -> ReplayOut:
        bought = await open_classes.buy_replay(
            session,
            open_class_id=open_class_id,
            student_id=body.student_id,
            actor=ctx.actor,
            now=ctx.now,
        )
        return ReplayOut.of(bought)

    return await ctx.run(body, ReplayOut, op)


@router.get(
    "/students/{student_id}/replays",
    **describe(
        Operation.read_replays,
        ["PAR-2"],
        "The open-class replays a student may watch (bought, or free as an attendee).",
    ),
)
async def replays_of_student(
    student_id: IdParam, ctx: Context = caller(Operation.read_replays)
) -> list[ReplayOut]:
    ctx.acts_for_student(student_id)

    async def op(session: AsyncSession) -> list[ReplayOut]:
        return [ReplayOut.of(r) for r in await open_classes.replays_of(session, student_id)]

    return await ctx.read(op)
