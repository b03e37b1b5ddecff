"""Activities of the webhook flow: read the subscription's next events, send one, pause.

Each is idempotent without an operation key: reads change nothing, a send is at least once
(the receiver de-duplicates by the event id), and the pause is a guarded UPDATE.
"""

import time

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import StoreActivities
from domain.events import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Delivery,
    EventsToDeliver,
    MarkPaused,
    ReadEvents,
    WebhookState,
    sign,
)
from store import events, webhooks
from store.models import WebhookSubscription


class WebhookActivities(StoreActivities):
    @activity.defn
    async def read_subscription_events(self, step: ReadEvents) -> EventsToDeliver:
        async with self.sessions() as session:
            row = await session.get(WebhookSubscription, step.subscription_id)
            if row is None or row.state is not WebhookState.active:
                state = WebhookState.deleted if row is None else row.state
                return EventsToDeliver(state=state, events=[])
            found = await events.read(
                session, after=step.after, types=row.types or None, limit=step.limit
            )
        return EventsToDeliver(state=WebhookState.active, events=found)

    @activity.defn
    async def deliver_event(self, step: Delivery) -> WebhookState:
        """POST the event, signed; any answer but 2xx (or none in time) fails this try, and
        Temporal retries it with backoff. A subscription no longer active is not sent to."""
        async with self.sessions() as session:
            row = await session.get(WebhookSubscription, step.subscription_id)
            if row is None or row.state is not WebhookState.active:
                return WebhookState.deleted if row is None else row.state
            url, secret = row.url, row.secret
        body = step.event.model_dump_json().encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Yueke-Webhooks/1",
            EVENT_ID_HEADER: str(step.event.id),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        }
        seconds = step.timeout.total_seconds()
        try:
            async with httpx.AsyncClient(timeout=seconds, follow_redirects=False) as client:
                answer = await client.post(url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise ApplicationError(f"no answer within {seconds:g} s", type="timeout") from exc
        except httpx.HTTPError as exc:
            raise ApplicationError(f"{type(exc).__name__}: {exc}", type="unreachable") from exc
        if not answer.is_success:
            raise ApplicationError(f"HTTP {answer.status_code}", type="refused")
        return WebhookState.active

    @activity.defn
    async def pause_failing_subscription(self, step: MarkPaused) -> WebhookState:
        async with self.sessions.begin() as session:
            return await webhooks.pause_failing(
                session, step.subscription_id, step.reason, step.now
            )
