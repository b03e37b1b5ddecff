"""Activities of the webhook flow: read the subscription's next events, send one, pause.

Each is idempotent without an operation key: reads change nothing, a send is at least once
(the receiver de-duplicates by the event id), and the pause is a guarded UPDATE.

A failed try says only what kind of failure it was (unreachable, timed out, answered 4xx or
5xx): that message becomes the subscription's paused reason, which its channel reads, so
transport details (which would tell open ports from closed ones) go to the worker log only.
"""

import asyncio
import logging
import socket
import time
from urllib.parse import urlsplit

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import StoreActivities
from domain.events import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Delivery,
    DeliveryPolicy,
    EventsToDeliver,
    MarkPaused,
    ReadEvents,
    WebhookState,
    private_address,
    sign,
)
from domain.rules import BookingRules
from store import events, webhooks
from store.db import Sessions
from store.models import WebhookSubscription

log = logging.getLogger(__name__)


class WebhookActivities(StoreActivities):
    def __init__(
        self, sessions: Sessions, rules: BookingRules, policy: DeliveryPolicy | None = None
    ) -> None:
        super().__init__(sessions, rules)
        self.policy = policy or DeliveryPolicy()

    async def _receiver_addresses(self, url: str) -> list[str]:
        """The receiver's addresses, resolved now (the name may point elsewhere than at
        registration); refused, and the subscription paused at once, if it is not public
        and the deployment does not allow that."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            log.warning("webhook receiver %s not resolved: %s", host, exc)
            raise ApplicationError("receiver unreachable", type="unreachable") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        if not self.policy.allow_private_addresses and any(map(private_address, addresses)):
            log.warning("webhook receiver %s resolves to a refused address %s", host, addresses)
            raise ApplicationError(
                "receiver address not allowed", type="address_refused", non_retryable=True
            )
        return addresses

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
        # Sent to an address just checked (a second lookup could answer another one), each in
        # turn until one takes the connection; the Host header and TLS (SNI, certificate) still
        # name the host.
        target = httpx.URL(url)
        headers["Host"] = target.netloc.decode().rpartition("@")[2]
        addresses = await self._receiver_addresses(url)
        seconds = step.timeout.total_seconds()
        try:
            async with httpx.AsyncClient(timeout=seconds, follow_redirects=False) as client:
                for address in addresses:
                    try:
                        answer = await client.post(
                            target.copy_with(host=address),
                            content=body,
                            headers=headers,
                            extensions={"sni_hostname": target.host},
                        )
                        break
                    except httpx.ConnectError:
                        if address == addresses[-1]:
                            raise
        except httpx.TimeoutException as exc:
            log.warning("webhook %s: no answer within %g s", step.subscription_id, seconds)
            raise ApplicationError("timed out", type="timeout") from exc
        except httpx.HTTPError as exc:
            log.warning("webhook %s: %s: %s", step.subscription_id, type(exc).__name__, exc)
            raise ApplicationError("receiver unreachable", type="unreachable") from exc
        if not answer.is_success:
            log.warning("webhook %s: HTTP %s", step.subscription_id, answer.status_code)
            raise ApplicationError(
                f"receiver answered {answer.status_code // 100}xx", type="refused"
            )
        return WebhookState.active

    @activity.defn
    async def pause_failing_subscription(self, step: MarkPaused) -> WebhookState:
        async with self.sessions.begin() as session:
            return await webhooks.pause_failing(
                session, step.subscription_id, step.reason, step.now
            )
