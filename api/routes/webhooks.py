"""Webhooks: a staff channel's subscriptions to the event feed, each delivered by its flow
webhook-{id}, signed with its secret (docs/events.md). A channel sees only its own."""

import logging
from datetime import datetime
from urllib.parse import urlsplit

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from api.context import Context, caller, describe
from api.routes.events import event_types
from api.types import IdParam, Text
from domain.channels import Operation
from domain.errors import FlowClosed, Unavailable, WebhookUrlRefused
from domain.events import WebhookInput, WebhookState, private_address
from store import events, webhooks
from workflows.common import WEBHOOK_STATE, FlowKind, search_attributes
from workflows.webhook_delivery import WebhookDeliveryWorkflow

router = APIRouter(prefix="/v1", tags=["webhooks"])
log = logging.getLogger(__name__)


class NewWebhook(BaseModel):
    url: Text = Field(max_length=2000, description="http:// or https:// with a host")
    secret: Text = Field(
        min_length=16,
        max_length=200,
        description="the key of the HMAC-SHA256 signature (at least 16 characters)",
    )
    types: list[Text] = Field(min_length=1, max_length=100)


class WebhookOut(BaseModel):
    """A subscription (never its secret)."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    channel: str
    url: str
    types: list[str]
    state: WebhookState
    starts_after: str = Field(description="it is sent the events after this feed cursor")
    paused_reason: str | None
    actor_id: str
    created_at: datetime
    updated_at: datetime


def web_url(url: str, allow_private_addresses: bool) -> str:
    """Only http(s) URLs with a host, no user or password in them, and (unless the deployment
    allows it) no host that is a private or loopback address (SSRF; the worker checks the
    address a name resolves to at each delivery). The URL is not echoed: it may hold
    credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - a port out of range raises here
    except ValueError as exc:
        raise WebhookUrlRefused("not a URL") from exc
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlRefused("a webhook URL carries no user or password; sign with the secret")
    if parts.scheme not in ("http", "https") or not host:
        raise WebhookUrlRefused("a webhook URL is http:// or https:// with a host")
    if not allow_private_addresses and _private_host(host):
        raise WebhookUrlRefused("a webhook is not sent to a private or loopback address")
    return url


def _private_host(host: str) -> bool:
    try:
        return private_address(host)
    except ValueError:
        return False  # a name, checked once resolved, at delivery


async def _nudge(ctx: Context, subscription_id: int, state: WebhookState) -> None:
    """Tell the flow at once; the database already holds the state, which the flow reads at
    its next poll anyway, so a Temporal outage only delays it."""
    try:
        await ctx.flows.tell(
            webhooks.flow_id(subscription_id), WebhookDeliveryWorkflow.changed, state
        )
    except (Unavailable, FlowClosed) as exc:
        log.warning("webhook-%s not told %s: %s", subscription_id, state.value, exc)


@router.post(
    "/webhooks",
    status_code=201,
    **describe(
        Operation.manage_webhooks,
        [],
        "Subscribe to events: each event of `types` is POSTed to `url` as JSON, in feed "
        "order, at least once, signed (headers in docs/events.md); retried with backoff, and "
        "paused after persistent failure. 422 webhook_url_refused (not http(s) with a host, "
        "a user or password in it, or a private or loopback address), "
        "422 unknown_event_type. Workflow id: webhook-{id}.",
    ),
)
async def create_webhook(
    body: NewWebhook, ctx: Context = caller(Operation.manage_webhooks)
) -> WebhookOut:
    url = web_url(body.url, ctx.webhooks.allow_private_addresses)
    types = event_types(body.types)
    assert types is not None

    async def op(session: AsyncSession) -> WebhookOut:
        row = await webhooks.create(
            session, url=url, secret=body.secret, types=sorted(types), actor=ctx.actor, now=ctx.now
        )
        return WebhookOut.model_validate(row)

    created = await ctx.run(body, WebhookOut, op)
    try:
        await ctx.flows.start(
            WebhookDeliveryWorkflow.run,
            WebhookInput(
                subscription_id=created.id,
                channel=created.channel,
                after=events.parse_cursor(created.starts_after),
                policy=ctx.webhooks,
                tag=ctx.tag_flows,
            ),
            flow_id=webhooks.flow_id(created.id),
            search_attributes=TypedSearchAttributes(
                [
                    *search_attributes(
                        FlowKind.webhook_delivery, channel=created.channel
                    ).search_attributes,
                    SearchAttributePair(WEBHOOK_STATE, WebhookState.active.value),
                ]
            ),
        )
    except Unavailable:
        await ctx.undo(lambda session: webhooks.forget(session, created.id))
        raise
    return created


@router.get(
    "/webhooks",
    **describe(Operation.manage_webhooks, [], "The calling channel's webhooks."),
)
async def list_webhooks(ctx: Context = caller(Operation.manage_webhooks)) -> list[WebhookOut]:
    async def op(session: AsyncSession) -> list[WebhookOut]:
        rows = await webhooks.of_channel(session, ctx.actor.channel.value)
        return [WebhookOut.model_validate(r) for r in rows]

    return await ctx.read(op)


@router.get(
    "/webhooks/{webhook_id}",
    **describe(
        Operation.manage_webhooks,
        [],
        "One of the calling channel's webhooks (404 webhook_not_found for another's).",
    ),
)
async def read_webhook(
    webhook_id: IdParam, ctx: Context = caller(Operation.manage_webhooks)
) -> WebhookOut:
    async def op(session: AsyncSession) -> WebhookOut:
        return WebhookOut.model_validate(
            await webhooks.get(session, webhook_id, ctx.actor.channel.value)
        )

    return await ctx.read(op)


async def _change(ctx: Context, webhook_id: int, state: WebhookState) -> WebhookOut:
    async def op(session: AsyncSession) -> WebhookOut:
        row = await webhooks.set_state(session, webhook_id, state, ctx.actor.channel.value, ctx.now)
        ctx.after_commit(_nudge, ctx, webhook_id, state)
        return WebhookOut.model_validate(row)

    return await ctx.run(None, WebhookOut, op)


@router.post(
    "/webhooks/{webhook_id}/pause",
    **describe(
        Operation.manage_webhooks, [], "Pause delivery; events keep accumulating in the feed."
    ),
)
async def pause_webhook(
    webhook_id: IdParam, ctx: Context = caller(Operation.manage_webhooks)
) -> WebhookOut:
    return await _change(ctx, webhook_id, WebhookState.paused)


@router.post(
    "/webhooks/{webhook_id}/resume",
    **describe(
        Operation.manage_webhooks,
        [],
        "Resume delivery (after a pause by the API or by persistent failure) from the first "
        "event not yet delivered.",
    ),
)
async def resume_webhook(
    webhook_id: IdParam, ctx: Context = caller(Operation.manage_webhooks)
) -> WebhookOut:
    return await _change(ctx, webhook_id, WebhookState.active)


@router.delete(
    "/webhooks/{webhook_id}",
    **describe(Operation.manage_webhooks, [], "Delete the webhook; its flow ends."),
)
async def delete_webhook(
    webhook_id: IdParam, ctx: Context = caller(Operation.manage_webhooks)
) -> WebhookOut:
    return await _change(ctx, webhook_id, WebhookState.deleted)
