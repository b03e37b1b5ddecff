"""Configuration from the environment (prefix YUEKE_, nested with __), plus the usual
DATABASE_URL / TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE names of the servers."""

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.channels import Channel
from domain.events import DeliveryPolicy
from domain.rules import BookingRules
from domain.weekly import WeeklyJobs


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, f"YUEKE_{name}")


def dev_channel_keys() -> dict[str, Channel]:
    """The dev stack's and tests' keys: `dev-<channel>` for every channel."""
    return {f"dev-{channel.value}": channel for channel in Channel}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="YUEKE_", env_nested_delimiter="__", env_ignore_empty=True
    )

    # Unset: the dev stack starts embedded PostgreSQL under data_dir.
    database_url: str | None = Field(None, validation_alias=_env("DATABASE_URL"))
    # Connections kept open per process, never more: a connection opened and closed per request
    # under load costs PostgreSQL more CPU than the booking it carries (bench/README.md).
    db_pool_size: int = 20
    # How long a request waits for a pooled connection before it answers 503 database_busy.
    db_pool_timeout: float = 5.0
    # Unset: the dev stack starts the Temporal dev server; elsewhere 127.0.0.1:7233.
    temporal_address: str | None = Field(None, validation_alias=_env("TEMPORAL_ADDRESS"))
    temporal_namespace: str = Field("default", validation_alias=_env("TEMPORAL_NAMESPACE"))
    temporal_task_queue: str = "yueke"
    temporal_api_key: str | None = None
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    # Tag flows with StudentId, TeacherId, Channel, Flow. Off only for the time-skipping test
    # server, which cannot register custom search attributes.
    temporal_search_attributes: bool = True
    # How long the API waits to connect to Temporal, and for a flow's answer, before it
    # answers 503 temporal_unavailable (the caller retries with the same Idempotency-Key).
    temporal_connect_timeout: float = 5.0
    flow_answer_timeout: float = 20.0
    # An over-booked class's flow told of a match before the start (which it would read at the
    # start anyway) is told at most this many a second per API process, so a classroom
    # spike's tells reach Temporal after it rather than taking the spike's CPU (bench/README).
    temporal_paced_calls_per_second: float = Field(10.0, gt=0)

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # The edge of HTTP (api/edges.py): a request body larger than this is 413 body_too_large,
    # refused by its Content-Length before it is read, or as soon as it streams past the limit;
    # a body not received in full within the timeout is 408 request_timeout.
    max_body_bytes: int = Field(1 << 20, ge=0)
    body_timeout_seconds: float = Field(10.0, gt=0)
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    data_dir: Path = Path(".yueke")

    # Where the worker serves the Temporal SDK's Prometheus metrics (host:port, e.g.
    # 0.0.0.0:9464); unset: the worker serves none. The API serves its own at /metrics.
    worker_metrics_address: str | None = None
    # OpenTelemetry traces of the API and the worker, sent to this OTLP collector (e.g.
    # http://otel-collector:4317); unset: no traces are made.
    otlp_endpoint: str | None = None
    otlp_protocol: Literal["grpc", "http/protobuf"] = "grpc"
    # How long a worker told to stop (SIGTERM, Ctrl-C) lets its running activities finish.
    worker_shutdown_seconds: float = Field(10.0, ge=0)

    # API key -> channel, e.g. YUEKE_CHANNEL_KEYS='{"s3cret": "parent_h5"}'.
    # Empty: every call is refused, except in the dev stack, which uses dev_channel_keys().
    channel_keys: dict[str, Channel] = {}
    rules: BookingRules = BookingRules()
    # When the weekly booking Schedules fire (SD-1, SD-6), e.g. YUEKE_WEEKLY__AUTO_BOOKING_AT.
    weekly: WeeklyJobs = WeeklyJobs()
    # How webhooks are delivered and when a failing one is paused, e.g.
    # YUEKE_WEBHOOKS__MAX_ATTEMPTS=300, YUEKE_WEBHOOKS__GIVE_UP_AFTER=P1D; receivers on private
    # or loopback addresses only with YUEKE_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES=true (docs/events.md).
    webhooks: DeliveryPolicy = DeliveryPolicy()
    # Operation keys (Idempotency-Key answers, activity results) are kept this long, then the
    # hourly Schedule `operation-key-cleanup` deletes them; a retry after that acts again.
    operation_key_retention: timedelta = timedelta(days=7)

    @model_validator(mode="after")
    def _auto_booking_after_the_dino_home_window(self) -> "Settings":
        """A Schedule firing inside the window would see every run refused
        (dino_home_window_open): refuse the configuration instead, at start."""
        if self.weekly.auto_booking_at < self.rules.dino_home_priority_until:
            raise ValueError(
                f"weekly.auto_booking_at ({self.weekly.auto_booking_at}) is before "
                f"rules.dino_home_priority_until ({self.rules.dino_home_priority_until}): "
                "next week's auto-booking waits for the dino-home window to close"
            )
        return self

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"
