"""Webhook subscriptions: a staff channel's URL, secret and event types; each is delivered by
its flow webhook-{id}. A channel sees and changes only its own."""

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor
from domain.errors import NotFound
from domain.events import WebhookState
from store import events
from store.models import WebhookSubscription

FLOW = "webhook-"


def flow_id(subscription_id: int) -> str:
    return f"{FLOW}{subscription_id}"


async def create(
    session: AsyncSession, *, url: str, secret: str, types: list[str], actor: Actor, now: datetime
) -> WebhookSubscription:
    row = WebhookSubscription(
        channel=actor.channel.value,
        url=url,
        secret=secret,
        types=sorted(set(types)),
        state=WebhookState.active,
        starts_after=str(await events.head(session)),
        actor_id=actor.id,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def of_channel(session: AsyncSession, channel: str) -> list[WebhookSubscription]:
    rows = await session.scalars(
        select(WebhookSubscription)
        .where(
            WebhookSubscription.channel == channel,
            WebhookSubscription.state != WebhookState.deleted,
        )
        .order_by(WebhookSubscription.id)
    )
    return list(rows)


async def get(
    session: AsyncSession, subscription_id: int, channel: str | None = None
) -> WebhookSubscription:
    """The subscription; `webhook_not_found` if it is deleted or another channel's."""
    row = await session.get(WebhookSubscription, subscription_id)
    if row is None or row.state is WebhookState.deleted or channel not in (None, row.channel):
        raise NotFound("webhook", subscription_id)
    return row


async def set_state(
    session: AsyncSession,
    subscription_id: int,
    state: WebhookState,
    channel: str,
    now: datetime,
) -> WebhookSubscription:
    """Pause, resume or delete (by the API): the flow follows."""
    row = await get(session, subscription_id, channel)
    row.state, row.updated_at = state, now
    row.paused_reason = "paused by the API" if state is WebhookState.paused else None
    await session.flush()
    return row


async def pause_failing(
    session: AsyncSession, subscription_id: int, reason: str, now: datetime
) -> WebhookState:
    """The flow gave up on an event: paused, unless the API changed the state meanwhile;
    the state the subscription is in, either way."""
    paused = await session.scalar(
        update(WebhookSubscription)
        .where(
            WebhookSubscription.id == subscription_id,
            WebhookSubscription.state == WebhookState.active,
        )
        .values(state=WebhookState.paused, paused_reason=reason[:500], updated_at=now)
        .returning(WebhookSubscription.state)
    )
    if paused is not None:
        return WebhookState(paused)
    row = await session.get(WebhookSubscription, subscription_id)
    return WebhookState.deleted if row is None else row.state


async def forget(session: AsyncSession, subscription_id: int) -> None:
    """Take back a subscription whose flow could not be started (the caller gets 503)."""
    await session.execute(
        delete(WebhookSubscription).where(WebhookSubscription.id == subscription_id)
    )
