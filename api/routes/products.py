"""Product-directed slots (INT-1): the dual-teacher / international channel reserves a teacher's
open slots for a product line and releases them back to general inventory."""

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context, caller, describe
from api.routes.timeslots import WEEK_OF_SLOTS, TimeslotOut
from api.types import Id, IdParam
from domain.channels import Operation
from domain.words import Product
from store import products

router = APIRouter(prefix="/v1", tags=["timeslots"])


class ReserveForProduct(BaseModel):
    product: Product
    timeslot_ids: list[Id] = Field(min_length=1, max_length=WEEK_OF_SLOTS)


class ReleaseToGeneral(BaseModel):
    timeslot_ids: list[Id] = Field(min_length=1, max_length=WEEK_OF_SLOTS)


class Directed(BaseModel):
    timeslots: list[TimeslotOut]


@router.post(
    "/teachers/{teacher_id}/timeslots/reserve-for-product",
    **describe(
        Operation.direct_product_slots,
        ["INT-1"],
        "Reserve the teacher's open general timeslots for a product line (dual_teacher, "
        "international): from then on only a booking made for that product (POST /v1/classes "
        "with `product`, by a channel that sells it) takes them, and availability lists them "
        "only when asked with that product. All of them, or none if any is booked (409 "
        "slot_already_booked), closed (409 slot_not_open) or directed at someone else (409 "
        "slot_reserved); a slot already reserved for the same product stays so.",
    ),
)
async def reserve_for_product(
    teacher_id: IdParam,
    body: ReserveForProduct,
    ctx: Context = caller(Operation.direct_product_slots),
) -> Directed:
    async def op(session: AsyncSession) -> Directed:
        reserved = await products.reserve(
            session,
            teacher_id=teacher_id,
            timeslot_ids=body.timeslot_ids,
            product=body.product,
            actor=ctx.actor,
            now=ctx.now,
        )
        return Directed(timeslots=[TimeslotOut.model_validate(slot) for slot in reserved])

    return await ctx.run(body, Directed, op)


@router.post(
    "/teachers/{teacher_id}/timeslots/release-to-general",
    **describe(
        Operation.direct_product_slots,
        ["INT-1"],
        "Release the teacher's open product-directed timeslots back to general inventory: all "
        "of them, or none if any is booked (409 slot_already_booked), closed (409 "
        "slot_not_open) or not directed at a product (409 not_product_slot).",
    ),
)
async def release_to_general(
    teacher_id: IdParam,
    body: ReleaseToGeneral,
    ctx: Context = caller(Operation.direct_product_slots),
) -> Directed:
    async def op(session: AsyncSession) -> Directed:
        released = await products.release(
            session,
            teacher_id=teacher_id,
            timeslot_ids=body.timeslot_ids,
            actor=ctx.actor,
            now=ctx.now,
        )
        return Directed(timeslots=[TimeslotOut.model_validate(slot) for slot in released])

    return await ctx.run(body, Directed, op)
