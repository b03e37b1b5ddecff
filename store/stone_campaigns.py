"""Energy-stone campaigns (TCH-7): the marketing platform's stone price of a course type over a
validity window; with no campaign at a time, the settings' price (`rules.stone_prices`).

"The stone price of course type X at time T" is one SQL fragment, `price_sql`: BOOK_AT_ONCE
joins it into its one statement, and `stone_price` (behind `ledger.charge_for`, which every
other booking path pays through) runs it alone. A booking records the amount it paid on the
class and its ledger entry; a refund returns that amount, whatever the price is by then.

A campaign's past never changes: it starts no earlier than now, and ending it early moves its
end to now (or, before it started, to its start: an empty window). So the price any booking paid
stays the price of its time. `ex_stone_campaigns_overlap` refuses two campaigns of one course
type at one instant, whichever commits second.
"""

from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor
from domain.errors import CampaignOver, CampaignOverlap, CampaignWindowInvalid
from domain.rules import BookingRules
from domain.words import CourseType
from store.db import get_or_404
from store.models import StoneCampaign

OVERLAP = "ex_stone_campaigns_overlap"


def price_sql(course_type: str, at: str, default: str) -> str:
    """SQL for the stone price of `course_type` at `at`: the campaign's then, else `default`
    (the settings' price). Arguments are SQL expressions (parameters). Written as the
    exclusion constraint's expressions, so that its GiST index finds the campaign."""
    return f"""coalesce((
        SELECT c.price FROM stone_campaigns AS c
        WHERE course_type_range(c.course_type, c.course_type, '[]') @> CAST({course_type} AS text)
          AND tstzrange(c.starts_at, c.ends_at) @> CAST({at} AS timestamptz)), {default})"""


_PRICE = text("SELECT " + price_sql(":course_type", ":at", ":default"))


async def stone_price(
    session: AsyncSession, course_type: CourseType, at: datetime, rules: BookingRules
) -> int:
    """What a class of this course type costs in energy stones when booked at `at`."""
    found: int = await session.scalar(
        _PRICE,
        {"course_type": course_type.value, "at": at, "default": rules.stone_prices[course_type]},
    )
    return found


async def create(
    session: AsyncSession,
    *,
    course_type: CourseType,
    price: int,
    starts_at: datetime,
    ends_at: datetime,
    name: str | None,
    actor: Actor,
    now: datetime,
) -> StoneCampaign:
    """A campaign from starts_at (not before now) until ends_at; CampaignOverlap if another of
    the course type is in force at any instant of it."""
    if starts_at < now or ends_at <= starts_at:
        raise CampaignWindowInvalid(
            "a campaign starts no earlier than now and ends after it starts",
            starts_at=starts_at.isoformat(),
            ends_at=ends_at.isoformat(),
            now=now.isoformat(),
        )
    clash = await session.scalar(
        select(StoneCampaign.id)
        .where(
            StoneCampaign.course_type == course_type,
            func.tstzrange(StoneCampaign.starts_at, StoneCampaign.ends_at).op("&&")(
                func.tstzrange(starts_at, ends_at)
            ),
        )
        .limit(1)
    )
    if clash is not None:
        raise _overlap(course_type, clash)
    campaign = StoneCampaign(
        course_type=course_type,
        price=price,
        starts_at=starts_at,
        ends_at=ends_at,
        name=name,
        channel=actor.channel.value,
        actor_id=actor.id,
        created_at=now,
    )
    session.add(campaign)
    try:
        await session.flush()
    except IntegrityError as lost:
        # A concurrent creation committed first: the constraint decided.
        if OVERLAP in str(lost.orig):
            raise _overlap(course_type, None) from None
        raise
    return campaign


def _overlap(course_type: CourseType, campaign_id: int | None) -> CampaignOverlap:
    return CampaignOverlap(
        "another campaign of this course type is in force during that window",
        course_type=course_type.value,
        campaign_id=campaign_id,
    )


async def end(session: AsyncSession, campaign_id: int, now: datetime) -> StoneCampaign:
    """End a campaign now (one not yet started: before it starts, so it never applies)."""
    ended: StoneCampaign | None = await session.scalar(
        update(StoneCampaign)
        .where(
            StoneCampaign.id == campaign_id,
            StoneCampaign.ends_at > now,
            StoneCampaign.ended_early_at.is_(None),
        )
        .values(ends_at=func.greatest(StoneCampaign.starts_at, now), ended_early_at=now)
        .returning(StoneCampaign)
    )
    if ended is None:
        campaign = await get_or_404(session, StoneCampaign, "campaign", campaign_id)
        raise CampaignOver(
            "the campaign has already ended",
            campaign_id=campaign.id,
            ends_at=campaign.ends_at.isoformat(),
        )
    return ended


async def campaigns(
    session: AsyncSession,
    *,
    course_type: CourseType | None,
    in_force_at: datetime | None,
    limit: int,
) -> list[StoneCampaign]:
    """Campaigns by start, of one course type and in force at one instant if asked."""
    query = select(StoneCampaign)
    if course_type is not None:
        query = query.where(StoneCampaign.course_type == course_type)
    if in_force_at is not None:
        query = query.where(
            StoneCampaign.starts_at <= in_force_at, StoneCampaign.ends_at > in_force_at
        )
    rows = await session.scalars(
        query.order_by(StoneCampaign.starts_at, StoneCampaign.id).limit(limit)
    )
    return list(rows)
