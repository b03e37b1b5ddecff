"""Webhooks end to end on the Temporal dev server, in real time, to a real HTTP receiver on
127.0.0.1 that fails some deliveries (5xx, and answers too slow for the timeout): every event
arrives, in feed order, signed; duplicates only by id. A subscription whose receiver keeps
failing is paused (its state, the flow's query and the WebhookState search attribute) and
delivers again when resumed; pause, resume and delete through the API.
"""

import asyncio
import json
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from domain.events import SIGNATURE_HEADER, TIMESTAMP_HEADER, DeliveryPolicy, sign
from store import webhooks
from store.db import Sessions
from tests.conftest import (
    HISTORIES,
    STRICT_SANDBOX,
    Stack,
    history_path,
    keep_history,
    settled_history,
)
from tests.helpers import FIREMAN, LP, as_, grant, student, teacher
from tests.test_class_request_flow import on_grid
from tests.test_events import read_all
from worker import build_worker
from yueke.settings import Settings, dev_channel_keys

DAY = timedelta(days=1)
SECRET = "whsec-" + "x" * 20
POLICY = DeliveryPolicy(
    poll=timedelta(seconds=0.2),
    batch=4,
    max_attempts=3,
    give_up_after=timedelta(seconds=60),
    first_retry=timedelta(seconds=0.2),
    max_retry=timedelta(seconds=0.5),
    timeout=timedelta(seconds=1),
    steps_per_run=12,
    allow_private_addresses=True,
)
# How the receiver answers an event's n-th try: "ok", "500" or "slow" (past the timeout).
Answer = Callable[[int, int], str]


class Receiver:
    """A webhook endpoint: checks each request's signature and remembers what it took."""

    def __init__(self) -> None:
        self.answer: Answer = lambda event_id, attempt: "ok"
        self.tries: Counter[int] = Counter()
        self.received: list[dict[str, Any]] = []  # every try, in arrival order
        self.accepted: list[dict[str, Any]] = []  # the tries answered 2xx in time
        self.bad: list[str] = []
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hooks"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in head.split("\r\n")[1:] if line)
        }
        body = await reader.readexactly(int(headers["content-length"]))
        event = json.loads(body)
        timestamp = headers[TIMESTAMP_HEADER.lower()]
        if headers[SIGNATURE_HEADER.lower()] != sign(SECRET, int(timestamp), body):
            self.bad.append(f"signature of event {event['id']}")
        if headers["yueke-event-id"] != str(event["id"]):
            self.bad.append(f"event id header of {event['id']}")
        self.tries[event["id"]] += 1
        self.received.append(event)
        answer = self.answer(event["id"], self.tries[event["id"]])
        if answer == "slow":
            await asyncio.sleep(2.5)
        status = b"500 Oops" if answer == "500" else b"200 OK"
        try:
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            if answer == "ok":
                self.accepted.append(event)
        except ConnectionError:
            pass
        writer.close()

    def delivered_ids(self) -> list[int]:
        """The accepted events, each once, in the order first accepted."""
        return list(dict.fromkeys(e["id"] for e in self.accepted))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    r.server = await asyncio.start_server(r.handle, "127.0.0.1", 0)
    yield r
    r.server.close()


@pytest.fixture
def policy() -> DeliveryPolicy:
    return POLICY


@pytest.fixture
async def hooks_stack(
    dev_server: WorkflowEnvironment, db: Sessions, database_url: str, policy: DeliveryPolicy
) -> AsyncIterator[Stack]:
    """As `live_stack`, with a delivery policy that retries and pauses within seconds, and
    lets the worker send to the receiver on 127.0.0.1."""
    settings = Settings(
        database_url=database_url,
        channel_keys=dev_channel_keys(),
        temporal_task_queue=f"yueke-hooks-{uuid.uuid4().hex[:8]}",
        webhooks=policy,
    )
    worker = build_worker(dev_server.client, db, settings, workflow_runner=STRICT_SANDBOX)
    app = create_app(settings, temporal_client=dev_server.client)
    async with worker, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://yueke") as api:
            yield Stack(api=api, env=dev_server, settings=settings)


async def subscribe(api: httpx.AsyncClient, url: str, types: list[str]) -> dict[str, Any]:
    r = await api.post(
        "/v1/webhooks", json={"url": url, "secret": SECRET, "types": types}, headers=LP
    )
    assert r.status_code == 201, r.text
    assert "secret" not in r.json()
    return dict(r.json())


async def until(check: Callable[[], Any], seconds: float = 60) -> None:
    """Wait for check() (a function or a coroutine function) to hold."""
    async with asyncio.timeout(seconds):
        while True:
            done = check()
            if asyncio.iscoroutine(done):
                done = await done
            if done:
                return
            await asyncio.sleep(0.1)


async def record(client: Client, flow_id: str, test_name: str) -> None:
    """With YUEKE_RECORD_HISTORIES=1, keep every run of the flow (walked back through its
    continue-as-new chain) in tests/histories/webhook_delivery/."""
    if not os.environ.get("YUEKE_RECORD_HISTORIES"):
        return
    runs: list[WorkflowHistory] = []
    run_id: str | None = None
    while True:
        history = await settled_history(client, flow_id, run_id)
        runs.append(history)
        started = history.events[0].workflow_execution_started_event_attributes
        if not started.continued_execution_run_id:
            break
        run_id = started.continued_execution_run_id
    for history in runs:
        keep_history(history, HISTORIES / "webhook_delivery", history_path(test_name))


async def test_every_event_arrives_in_order_signed_through_failures_and_timeouts(
    hooks_stack: Stack, db: Sessions, receiver: Receiver, request: pytest.FixtureRequest
) -> None:
    api = hooks_stack.api

    def flaky(event_id: int, attempt: int) -> str:
        if event_id % 5 == 0 and attempt == 1:
            return "slow"
        if (event_id % 4 == 0 and attempt == 1) or (event_id % 7 == 0 and attempt <= 2):
            return "500"
        return "ok"

    receiver.answer = flaky
    t = await teacher(api)
    s = await student(api)
    hook = await subscribe(api, receiver.url, ["timeslot.opened", "money.credited"])
    start = on_grid(await hooks_stack.now(), 2 * DAY)
    r = await api.post(
        f"/v1/teachers/{t}/timeslots",
        json={"start_at": [(start + i * timedelta(hours=1)).isoformat() for i in range(7)]},
        headers=as_("teacher", t),
    )
    assert r.status_code == 201, r.text
    for _ in range(5):
        await grant(api, s, "credit", 1, "major")

    expected, _ = await read_all(
        api, db, FIREMAN, types="timeslot.opened,money.credited", after=hook["starts_after"]
    )
    assert len(expected) == 12
    want = [e["id"] for e in expected]
    await until(lambda: receiver.delivered_ids() == want)
    assert receiver.bad == []
    # Duplicates only of an event already sent (a try the receiver took too long to answer).
    assert set(receiver.tries) == set(want)
    assert max(receiver.tries.values()) > 1
    # In feed order, try after try: a later event is never sent before an earlier one is taken.
    order = {event_id: i for i, event_id in enumerate(want)}
    sent = [order[e["id"]] for e in receiver.received]
    assert sent == sorted(sent)
    assert [e["type"] for e in receiver.accepted][:1] == [expected[0]["type"]]
    assert receiver.accepted[0] == {k: expected[0][k] for k in receiver.accepted[0]}

    flow = hooks_stack.env.client.get_workflow_handle(webhooks.flow_id(hook["id"]))
    status = await flow.query("state")
    assert status["state"] == "active" and status["delivered"] == 12
    assert status["after"] == expected[-1]["cursor"]
    await record(hooks_stack.env.client, flow.id, request.node.name)


async def test_a_failing_subscription_pauses_and_resumes(
    hooks_stack: Stack, db: Sessions, receiver: Receiver, request: pytest.FixtureRequest
) -> None:
    api = hooks_stack.api
    client = hooks_stack.env.client
    down = True
    receiver.answer = lambda event_id, attempt: "500" if down else "ok"
    s = await student(api)
    hook = await subscribe(api, receiver.url, ["money.credited"])
    flow_id = webhooks.flow_id(hook["id"])
    await grant(api, s, "credit", 1, "major")
    await grant(api, s, "credit", 2, "major")

    async def paused() -> bool:
        r = await api.get(f"/v1/webhooks/{hook['id']}", headers=LP)
        return bool(r.json()["state"] == "paused")

    await until(paused)
    r = await api.get(f"/v1/webhooks/{hook['id']}", headers=LP)
    assert (
        r.json()["paused_reason"]
        == f"event {receiver.received[0]['id']} failed: receiver answered 5xx"
    )
    first = receiver.received[0]["id"]
    assert set(receiver.tries) == {first} and receiver.tries[first] == POLICY.max_attempts
    status = await client.get_workflow_handle(flow_id).query("state")
    assert status["state"] == "paused" and status["last_error"] == "receiver answered 5xx"

    async def found_paused() -> bool:
        query = (
            f'Flow = "webhook_delivery" AND WebhookState = "paused" AND WorkflowId = "{flow_id}"'
        )
        return any([w async for w in client.list_workflows(query)])

    await until(found_paused)

    down = False
    r = await api.post(f"/v1/webhooks/{hook['id']}/resume", headers=LP)
    assert r.status_code == 200 and r.json()["state"] == "active"
    await until(lambda: len(receiver.delivered_ids()) == 2)
    assert receiver.delivered_ids()[0] == first and receiver.bad == []

    # Paused by the API: nothing is sent until it is resumed.
    r = await api.post(f"/v1/webhooks/{hook['id']}/pause", headers=LP)
    assert r.json()["state"] == "paused"
    await grant(api, s, "credit", 3, "major")
    await asyncio.sleep(1.5)
    assert len(receiver.delivered_ids()) == 2
    await api.post(f"/v1/webhooks/{hook['id']}/resume", headers=LP)
    await until(lambda: len(receiver.delivered_ids()) == 3)

    # Deleted: the flow ends, and the webhook is gone from the channel's list.
    r = await api.delete(f"/v1/webhooks/{hook['id']}", headers=LP)
    assert r.status_code == 200 and r.json()["state"] == "deleted"
    handle = client.get_workflow_handle(flow_id)
    async with asyncio.timeout(30):
        await handle.result()
    assert (await handle.describe()).status is WorkflowExecutionStatus.COMPLETED
    r = await api.get("/v1/webhooks", headers=LP)
    assert r.json() == []
    await record(client, flow_id, request.node.name)


async def paused_reason(api: httpx.AsyncClient, hook: dict[str, Any]) -> str:
    """The subscription's paused reason, once the flow has paused it."""
    reason: str | None = None

    async def paused() -> bool:
        nonlocal reason
        r = await api.get(f"/v1/webhooks/{hook['id']}", headers=LP)
        reason = r.json()["paused_reason"]
        return bool(r.json()["state"] == "paused")

    await until(paused)
    assert reason is not None
    return reason


async def test_an_unreachable_receiver_is_paused_without_transport_details(
    hooks_stack: Stack, receiver: Receiver
) -> None:
    """The paused reason is what its channel reads: the kind of failure, never the
    connection error (which would tell a closed port from an open one)."""
    api = hooks_stack.api
    closed = receiver.url
    assert receiver.server is not None
    receiver.server.close()
    await receiver.server.wait_closed()
    s = await student(api)
    hook = await subscribe(api, closed, ["money.credited"])
    await grant(api, s, "credit", 1, "major")
    reason = await paused_reason(api, hook)
    assert reason.endswith(" failed: receiver unreachable"), reason
    flow = hooks_stack.env.client.get_workflow_handle(webhooks.flow_id(hook["id"]))
    assert (await flow.query("state"))["last_error"] == "receiver unreachable"


@pytest.mark.parametrize("policy", [POLICY.model_copy(update={"allow_private_addresses": False})])
async def test_a_name_resolving_to_a_private_address_is_not_sent_to(
    hooks_stack: Stack, receiver: Receiver
) -> None:
    """A name passes registration; at delivery it resolves to loopback, which this deployment
    does not allow: nothing is sent, and the subscription is paused at the first try."""
    api = hooks_stack.api
    s = await student(api)
    hook = await subscribe(api, receiver.url.replace("127.0.0.1", "localhost"), ["money.credited"])
    await grant(api, s, "credit", 1, "major")
    reason = await paused_reason(api, hook)
    assert reason.endswith(" failed: receiver address not allowed"), reason
    assert receiver.received == []


def test_the_default_retries_ride_out_an_hour_long_outage() -> None:
    """With the default policy an event is still being retried after a receiver has been
    down for an hour (a deploy, a network incident): the tries' backoff, capped at
    `max_retry`, reaches past an hour before `max_attempts` or `give_up_after` end it."""
    policy = DeliveryPolicy()
    waited, interval = timedelta(0), policy.first_retry
    for _ in range(policy.max_attempts - 1):
        waited += interval
        interval = min(interval * 2, policy.max_retry)
    assert waited > timedelta(hours=2)
    assert policy.give_up_after > timedelta(hours=2)
    assert policy.max_retry <= timedelta(minutes=5)
    assert not policy.allow_private_addresses
