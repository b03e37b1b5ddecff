"""What the operation-key cleanup flow carries: operation keys are kept for a retention, then
deleted in small batches by a Schedule (see workflows.operation_key_cleanup)."""

from datetime import datetime, timedelta

from pydantic import BaseModel, Field


class KeyCleanup(BaseModel):
    """One cleanup run: delete the keys older than `retention`, `batch` at a time, at most
    `max_batches` batches (the next run goes on)."""

    retention: timedelta = timedelta(days=7)
    batch: int = Field(1000, ge=1)
    max_batches: int = Field(100, ge=1)


class DeleteExpiredKeys(BaseModel):
    before: datetime
    batch: int


class DeletedKeys(BaseModel):
    deleted: int


class CleanupOutcome(BaseModel):
    before: datetime
    deleted: int
    batches: int
