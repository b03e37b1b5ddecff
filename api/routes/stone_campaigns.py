"""Energy-stone campaigns (TCH-7): the marketing platform sets the stone price of a course type
for a validity window; bookings with stones pay the price of their booking time."""

from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context, caller, describe
from api.types import IdParam, Text, UtcDatetime
from domain.channels import Operation
from domain.words import CourseType
from store import stone_campaigns

router = APIRouter(prefix="/v1", tags=["stone campaigns"])


class NewCampaign(BaseModel):
    course_type: CourseType
    price: int = Field(ge=1, le=1_000_000, description="energy stones per class")
    starts_at: UtcDatetime | None = Field(
        None, description="in force from (not before now); default: now"
    )
    ends_at: UtcDatetime = Field(description="in force until (excluded)")
    name: Text | None = Field(None, max_length=200)


class CampaignOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    course_type: CourseType
    price: int
    starts_at: datetime
    ends_at: datetime
    name: str | None
    ended_early_at: datetime | None
    channel: str
    actor_id: str
    created_at: datetime


@router.post(
    "/stone-campaigns",
    status_code=201,
    **describe(
        Operation.manage_stone_campaigns,
        ["TCH-7"],
        "Set the energy-stone price of a course type from starts_at (not before now; default "
        "now) until ends_at. A booking paid with stones at a time inside the window pays this "
        "price; outside any campaign, the settings' price. Two campaigns of one course type "
        "may not overlap (409 campaign_overlap, held by PostgreSQL even for concurrent "
        "creations); a window that ends before it starts or starts in the past is 422 "
        "campaign_window_invalid.",
    ),
)
async def create_campaign(
    body: NewCampaign, ctx: Context = caller(Operation.manage_stone_campaigns)
) -> CampaignOut:
    async def op(session: AsyncSession) -> CampaignOut:
        campaign = await stone_campaigns.create(
            session,
            course_type=body.course_type,
            price=body.price,
            starts_at=body.starts_at or ctx.now,
            ends_at=body.ends_at,
            name=body.name,
            actor=ctx.actor,
            now=ctx.now,
        )
        return CampaignOut.model_validate(campaign)

    return await ctx.run(body, CampaignOut, op)


@router.post(
    "/stone-campaigns/{campaign_id}/end",
    **describe(
        Operation.manage_stone_campaigns,
        ["TCH-7"],
        "End a campaign early: its window ends now (a campaign not yet started never applies). "
        "Classes already booked keep the price they paid, and a refund returns exactly that. "
        "409 campaign_over if it has already ended.",
    ),
)
async def end_campaign(
    campaign_id: IdParam, ctx: Context = caller(Operation.manage_stone_campaigns)
) -> CampaignOut:
    async def op(session: AsyncSession) -> CampaignOut:
        return CampaignOut.model_validate(await stone_campaigns.end(session, campaign_id, ctx.now))

    return await ctx.run(None, CampaignOut, op)


@router.get(
    "/stone-campaigns",
    **describe(
        Operation.read_stone_campaigns,
        ["TCH-7"],
        "Energy-stone campaigns by start; of one course type, and in force at one instant "
        "(in_force_at), if asked.",
    ),
)
async def list_campaigns(
    course_type: CourseType | None = None,
    in_force_at: UtcDatetime | None = None,
    limit: int = Query(100, ge=1, le=1000),
    ctx: Context = caller(Operation.read_stone_campaigns),
) -> list[CampaignOut]:
    async def op(session: AsyncSession) -> list[CampaignOut]:
        found = await stone_campaigns.campaigns(
            session, course_type=course_type, in_force_at=in_force_at, limit=limit
        )
        return [CampaignOut.model_validate(c) for c in found]

    return await ctx.read(op)
