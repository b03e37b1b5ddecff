"""Thin Temporal activities: each runs one store operation in one transaction, once.

The operation key is the activity's place in its workflow run, so a retry after a crash gets
the first result back instead of acting twice (ARCHITECTURE rule 4). A refusal (DomainError)
becomes a non-retryable ApplicationError carrying the same code, status and details.
"""

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.errors import DomainError
from domain.refusal import Refusal
from domain.rules import BookingRules
from store import operation_keys
from store.db import Sessions

Out = TypeVar("Out", bound=BaseModel)


def step_hashes(step: BaseModel) -> tuple[str, str]:
    """The step's input less its `now` (a local activity's input is built again by each try of
    its workflow task, with that try's workflow.now(), and is the same step all the same), and
    whole, as keys written with the now were hashed."""
    return (
        operation_keys.digest(step.model_dump_json(exclude={"now"})),
        operation_keys.digest(step.model_dump_json()),
    )


def refusal_error(refusal: Refusal) -> ApplicationError:
    return ApplicationError(
        refusal.message, refusal.model_dump(mode="json"), type=refusal.code, non_retryable=True
    )


class StoreActivities:
    def __init__(self, sessions: Sessions, rules: BookingRules) -> None:
        self.sessions = sessions
        self.rules = rules

    async def once(
        self,
        step: BaseModel,
        now: datetime,
        out: type[Out],
        op: Callable[[AsyncSession], Awaitable[Out]],
    ) -> Out:
        """op in one transaction, once for this activity of this workflow run."""
        request_hash, also_hash = step_hashes(step)
        try:
            return await operation_keys.once(
                self.sessions,
                scope="activity",
                key=self.key(),
                request_hash=request_hash,
                also_hash=also_hash,
                now=now,
                out=out,
                op=op,
            )
        except DomainError as error:
            raise refusal_error(Refusal.of(error)) from error

    async def read(self, op: Callable[[AsyncSession], Awaitable[Out]]) -> Out:
        """op in one transaction that writes nothing: a read needs no operation key, a retry
        reads again."""
        try:
            async with self.sessions() as session, session.begin():
                return await op(session)
        except DomainError as error:
            raise refusal_error(Refusal.of(error)) from error

    @staticmethod
    def key() -> str:
        """The running activity's operation key: its place in its workflow run."""
        info = activity.info()
        return f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}"
