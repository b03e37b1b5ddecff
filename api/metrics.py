"""The API's Prometheus metrics at /metrics: every request by route template, method and status
with its latency (prometheus-fastapi-instrumentator's middleware), and the business outcomes,
each counted once where it is decided: bookings and cancels after their transaction committed,
refusals by code where every error becomes its answer (api/errors.py), flows started where the
API starts them (api/flows.py).

The metrics are defined once per process, whatever the number of apps it builds (the tests
build many). Under `yueke api --workers N` each process writes its samples to
PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode, set by the CLI) and /metrics
answers the sum over all of them, whichever process serves the scrape.
"""

from fastapi import FastAPI
from prometheus_client import Counter, Histogram, disable_created_metrics
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator.metrics import Info

from api.schemas import ClassOut

# Only the counts: a `_created` timestamp beside each counter doubles what a scrape reads.
disable_created_metrics()  # type: ignore[no-untyped-call]

REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by method, route template (`handler`) and status.",
    ["method", "handler", "status"],
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template (`handler`).",
    ["method", "handler"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20),
)
BOOKED = Counter(
    "yueke_classes_booked_total",
    "Classes booked through POST /v1/classes and /v1/classes/batch, by channel and course type.",
    ["channel", "course_type"],
)
CANCELLED = Counter(
    "yueke_classes_cancelled_total",
    "Classes cancelled through POST /v1/classes/{id}/cancel, by channel and whether refunded.",
    ["channel", "refunded"],
)
REFUNDS = Counter(
    "yueke_refunds_total",
    "Payments a cancel returned to the student, by channel and asset.",
    ["channel", "asset"],
)
REFUSALS = Counter(
    "yueke_refusals_total",
    "Error answers by code and HTTP status (4xx refusals, 503 outages, 500 bugs).",
    ["code", "status"],
)
FLOWS_STARTED = Counter(
    "yueke_flows_started_total",
    "Flows the API started, by flow (the Flow search attribute); a retry that joins the "
    "running flow counts again. The worker's Temporal metrics count them finished.",
    ["flow"],
)


def _observe(info: Info) -> None:
    REQUESTS.labels(info.method, info.modified_handler, info.modified_status).inc()
    LATENCY.labels(info.method, info.modified_handler).observe(info.modified_duration)


def install(app: FastAPI) -> None:
    """Count every request (outermost, so that the edges' and error handlers' answers count
    with their status) and serve /metrics."""
    instrumentator = Instrumentator(
        should_group_status_codes=False, excluded_handlers=["/metrics"]
    ).add(_observe)
    instrumentator.instrument(app).expose(app, include_in_schema=False, tags=["ops"])


async def classes_booked(channel: str, booked: list[ClassOut]) -> None:
    for one in booked:
        BOOKED.labels(channel, one.course_type.value).inc()


async def class_cancelled(channel: str, cancelled: ClassOut) -> None:
    CANCELLED.labels(channel, str(cancelled.refunded).lower()).inc()
    if cancelled.refunded:
        REFUNDS.labels(channel, cancelled.payment_asset.value).inc()


def refused(code: str, status: int) -> None:
    REFUSALS.labels(code, str(status)).inc()


def flow_started(flow: str) -> None:
    FLOWS_STARTED.labels(flow).inc()
