"""One trace from the HTTP request through the flow it starts to that flow's activities: the API
instrumented by opentelemetry-instrumentation-fastapi, its Temporal client and the worker by
Temporal's TracingInterceptor, every span into an in-memory exporter.

covers: TCH-3, TCH-4
"""

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from store.db import Sessions
from tests.conftest import STRICT_SANDBOX
from tests.helpers import as_, student, teacher
from tests.test_class_request_flow import ask, on_grid
from worker import build_worker
from yueke import telemetry
from yueke.settings import Settings, dev_channel_keys

DAY = timedelta(days=1)


@pytest.fixture
async def traced(
    time_skipping: WorkflowEnvironment, db: Sessions, database_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter]]:
    """The API and a worker on one traced Temporal client, as `yueke dev` builds them."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    client = Client(
        **{
            **time_skipping.client.config(),
            "interceptors": telemetry.temporal_interceptors(provider),
        }
    )
    settings = Settings(
        database_url=database_url,
        channel_keys=dev_channel_keys(),
        temporal_task_queue=f"yueke-traced-{uuid.uuid4().hex[:8]}",
        temporal_search_attributes=False,
    )
    worker = build_worker(client, db, settings, workflow_runner=STRICT_SANDBOX)
    app = create_app(
        settings,
        temporal_client=client,
        clock=time_skipping.get_current_time,
        tracer_provider=provider,
    )
    async with worker, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://yueke") as api:
            yield api, spans
    provider.shutdown()


def server_span(spans: list[ReadableSpan], route: str) -> ReadableSpan:
    [span] = [
        s
        for s in spans
        if s.attributes and s.attributes.get("http.route") == route and not s.parent
    ]
    return span


async def test_class_request_approve_is_one_trace(
    traced: tuple[httpx.AsyncClient, InMemorySpanExporter], time_skipping: WorkflowEnvironment
) -> None:
    api, exporter = traced
    t = await teacher(api)
    s = await student(api, credits={"major": 1})
    request = await ask(api, s, t, on_grid(await time_skipping.get_current_time(), 2 * DAY))
    assert request.status_code == 201, request.text
    request_id = request.json()["id"]
    approved = await api.post(
        f"/v1/class-requests/{request_id}/approve", json={}, headers=as_("teacher", t)
    )
    assert approved.json()["state"] == "approved", approved.text
    await time_skipping.client.get_workflow_handle(f"class-request-{request_id}").result()

    spans = list(exporter.get_finished_spans())
    created = server_span(spans, "/v1/class-requests")
    trace = [s for s in spans if s.context and s.context.trace_id == created.context.trace_id]
    names = {s.name for s in trace}
    # The request started the flow; the flow ran in the worker, and its activities with it,
    # the booking of the approved request included: all in the request's trace.
    assert "StartWorkflow:ClassRequestWorkflow" in names, names
    assert "RunWorkflow:ClassRequestWorkflow" in names, names
    assert {"RunActivity:hold_request_payment", "RunActivity:book_approved_request"} <= names
    by_id = {s.context.span_id: s for s in trace if s.context}

    def ancestors(span: ReadableSpan) -> list[str]:
        chain = []
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            chain.append(span.name)
        return chain

    # API span -> the flow's start -> the workflow's spans (TracingInterceptor parents each to
    # the flow's context, so they are siblings) -> the activity run by the worker.
    [book] = [s for s in trace if s.name == "RunActivity:book_approved_request"]
    assert ancestors(book) == [
        "StartActivity:book_approved_request",
        "StartWorkflow:ClassRequestWorkflow",
        created.name,
    ]
    [run] = [s for s in trace if s.name == "RunWorkflow:ClassRequestWorkflow"]
    assert ancestors(run) == ["StartWorkflow:ClassRequestWorkflow", created.name]

    # The teacher's approve is a trace of its own up to the update it sends; the flow handles
    # the update in the flow's trace, with a link back to the approve.
    approve = server_span(spans, "/v1/class-requests/{request_id}/approve")
    answered = {
        s.name for s in spans if s.context and s.context.trace_id == approve.context.trace_id
    }
    assert "StartWorkflowUpdate:approve" in answered, answered
    [handled] = [s for s in trace if s.name == "HandleUpdate:approve"]
    assert approve.context.trace_id in {link.context.trace_id for link in handled.links}
