"""The event feed's vocabulary and what the webhook flow carries (docs/events.md).

Every change to a class, a timeslot, a request, a hold, a contract, an open class, a course
enrolment or money writes one row of the audit trail in its own transaction; its type is
`<entity>.<action>`.
`TYPES` is the list a reader filters by and a webhook subscribes to.
"""

import hashlib
import hmac
import ipaddress
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

TYPES: frozenset[str] = frozenset(
    {
        # A class (entity_id: the class).
        "class.booked",
        "class.force_booked",
        "class.make_up",
        "class.advanced_pair",
        "class.cancelled",
        "class.teacher_matched",
        "class.teacher_changed",
        "class.student_changed",
        "class.teacher_swapped",
        "class.finished",
        "class.finish_undone",
        "class.label_adjusted",
        # A timeslot (entity_id: the timeslot).
        "timeslot.opened",
        "timeslot.closed",
        "timeslot.booked",
        "timeslot.force_booked",
        "timeslot.freed",
        "timeslot.removed",
        "timeslot.held",
        "timeslot.hold_extended",
        "timeslot.hold_booked",
        "timeslot.hold_expired",
        "timeslot.hold_ended",
        "timeslot.released",
        "timeslot.reserved",
        "timeslot.directed",
        "timeslot.open_class",
        # A class request (entity_id: the request).
        "request.created",
        "request.approved",
        "request.rejected",
        "request.expired",
        "request.withdrawn",
        "request.failed",
        # A teacher-cancel hold (entity_id: the cancelled class).
        "hold.started",
        "hold.booked",
        "hold.expired",
        "hold.ended",
        # A dual-excellence contract (entity_id: the contract).
        "contract.proposed",
        "contract.agreed",
        "contract.declined",
        "contract.started",
        "contract.expired",
        "contract.terminated",
        "contract.finished",
        "contract.week_awaiting",
        "contract.week_booked",
        "contract.week_unbooked",
        "contract.week_declined",
        "contract.week_expired",
        "contract.week_withdrawn",
        # An open class (entity_id: the open class).
        "open_class.created",
        "open_class.edited",
        "open_class.listed",
        "open_class.delisted",
        "open_class.replay_priced",
        "open_class.seat_taken",
        "open_class.replay_bought",
        # A course enrolment (entity_id: the learning progress).
        "progress.course_started",
        # A ledger entry (entity_id: the entry), written by a trigger on every entry.
        "money.credited",
        "money.debited",
    }
)

SIGNATURE_HEADER = "Yueke-Signature"
TIMESTAMP_HEADER = "Yueke-Timestamp"
EVENT_ID_HEADER = "Yueke-Event-Id"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`v1=` and the hex HMAC-SHA256 of `<timestamp>.<body>` under the subscription's secret."""
    message = str(timestamp).encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class WebhookState(StrEnum):
    active = "active"
    paused = "paused"
    deleted = "deleted"


class Cursor(BaseModel):
    """A place in the feed: after the row `id` of transaction `xid` (docs/events.md)."""

    xid: int
    id: int

    def __str__(self) -> str:
        return f"{self.xid}-{self.id}"


class Event(BaseModel):
    id: int
    cursor: str
    type: str
    entity: str
    entity_id: int
    student_id: int | None
    teacher_ids: list[int]
    channel: str
    actor_id: str
    occurred_at: datetime
    payload: dict[str, Any]


class DeliveryPolicy(BaseModel):
    """How the webhook flow delivers (settings `YUEKE_WEBHOOKS__…`): an idle subscription reads
    the feed every `poll`, up to `batch` events at a time; each event is tried up to
    `max_attempts` times within `give_up_after`, backing off from `first_retry` to at most
    `max_retry`, each try given `timeout`; the defaults ride out a receiver down for hours.
    An event that still fails pauses the subscription. A run continues as new after
    `steps_per_run` activities. `allow_private_addresses`: the worker sends to, and the API
    accepts, receivers on loopback, private, link-local and other non-public addresses (the
    tests and `yueke dev`; never in production, where they are the metadata service, the
    databases, Temporal)."""

    poll: timedelta = timedelta(seconds=5)
    batch: int = Field(100, ge=1, le=1000)
    max_attempts: int = Field(300, ge=1)
    give_up_after: timedelta = timedelta(hours=24)
    first_retry: timedelta = timedelta(seconds=1)
    max_retry: timedelta = timedelta(minutes=5)
    timeout: timedelta = timedelta(seconds=10)
    steps_per_run: int = Field(500, ge=2)
    allow_private_addresses: bool = False


def private_address(address: str) -> bool:
    """Not a public unicast address: where a webhook is not sent unless the deployment allows
    it (SSRF). An IPv4 address written as IPv6 (::ffff:a.b.c.d) counts as itself."""
    ip = ipaddress.ip_address(address.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        not ip.is_global
        or ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


class WebhookInput(BaseModel):
    """The flow webhook-{id}'s input, and what it carries over a continue-as-new. `tag`: set
    the WebhookState search attribute (off on the time-skipping test server)."""

    subscription_id: int
    channel: str
    policy: DeliveryPolicy
    tag: bool = True
    after: Cursor | None = None
    paused: bool = False
    delivered: int = 0


class ReadEvents(BaseModel):
    subscription_id: int
    after: Cursor | None
    limit: int


class EventsToDeliver(BaseModel):
    """The subscription's state and, while active, its next events."""

    state: WebhookState
    events: list[Event]


class Delivery(BaseModel):
    subscription_id: int
    event: Event
    timeout: timedelta


class MarkPaused(BaseModel):
    subscription_id: int
    reason: str
    now: datetime


class WebhookStatus(BaseModel):
    """What the flow's `state` query shows in the Web UI."""

    subscription_id: int
    state: WebhookState
    after: str | None
    delivered: int
    last_error: str | None


def cursor_of(event: Event) -> Cursor:
    xid, _, row = event.cursor.partition("-")
    return Cursor(xid=int(xid), id=int(row))
