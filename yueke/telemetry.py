"""Traces and the worker's metrics, by settings: off unless configured, so that a developer's
stack and the tests send nothing anywhere.

One trace runs from an HTTP request (opentelemetry-instrumentation-fastapi) through the flow it
starts or asks (Temporal's TracingInterceptor carries the context in the workflow's headers) to
the activities the flow runs. The worker's metrics are the Temporal SDK's own (its Rust core
serves them on worker_metrics_address).
"""

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from yueke.settings import Settings


def tracer_provider(settings: Settings, service: str) -> TracerProvider | None:
    """Spans of `service` batched to the OTLP collector at otlp_endpoint; None (no spans) when
    it is unset."""
    if not settings.otlp_endpoint:
        return None
    exporter: SpanExporter
    if settings.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as OTLPHttpSpanExporter,
        )

        exporter = OTLPHttpSpanExporter(endpoint=settings.otlp_endpoint)
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def temporal_interceptors(provider: TracerProvider | None) -> list[Interceptor]:
    """The Temporal client's interceptors: a client with them passes the trace to the flows it
    starts, and a worker built on it continues that trace in workflows and activities."""
    if provider is None:
        return []
    return [TracingInterceptor(provider.get_tracer("yueke"))]


def trace_requests(app: FastAPI, provider: TracerProvider | None) -> None:
    """A server span for every request but the scrapes and health checks."""
    if provider is not None:
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=provider, excluded_urls="/metrics,/healthz"
        )


def worker_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime serving the SDK's metrics (workflow and activity completions,
    failures and latencies by type, task queue polls, slots) for Prometheus; None keeps the
    default runtime, which serves none."""
    if not settings.worker_metrics_address:
        return None
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=settings.worker_metrics_address)
        )
    )
