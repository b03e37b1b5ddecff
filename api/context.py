"""Per-request context: who calls (channel key + X-Actor-Id), the clock, and transactions
with Idempotency-Key replay."""

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ParamSpec, TypeVar

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import WorkflowUpdateFailedError
from temporalio.workflow import UpdateMethodMultiParam

from api.flows import Flows
from api.schemas import ERROR_RESPONSES
from domain.channels import ALLOWED, PARENTS, Actor, Channel, Operation
from domain.errors import DomainError, FlowClosed, Forbidden, ForbiddenActor, Unauthenticated
from domain.events import DeliveryPolicy
from domain.rules import BookingRules
from store import operation_keys
from store.db import Sessions

Out = TypeVar("Out", bound=BaseModel)
T = TypeVar("T")
A = TypeVar("A")
P = ParamSpec("P")


MAX_ACTOR_ID = 64  # the width of the actor_id columns


@dataclass(frozen=True)
class FlowCall:
    """What a flow call needs for idempotency: the id of its update (None: Temporal makes one)
    and the id reserved for the flow it starts."""

    update_id: str | None
    reserved_id: int | None

    @property
    def reserved(self) -> int:
        assert self.reserved_id is not None, "the call passed `reserve`"
        return self.reserved_id


@dataclass
class Context:
    actor: Actor
    now: datetime
    rules: BookingRules
    sessions: Sessions
    flows: Flows
    path: str
    idempotency_key: str | None
    # How webhook flows deliver, and whether flows set search attributes (settings).
    webhooks: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    tag_flows: bool = True
    _after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def acts_for_student(self, student_id: int) -> None:
        """Parent channels act only for the student they are logged in as."""
        if self.actor.channel in PARENTS and self.actor.id != str(student_id):
            raise ForbiddenActor(
                "a parent acts only for their own student",
                channel=self.actor.channel.value,
                actor_id=self.actor.id,
                student_id=student_id,
            )

    @property
    def parents_student(self) -> int | None:
        """The one student a parent channel acts for (0, nobody, if its actor id is not a
        student id); None for the other channels."""
        if self.actor.channel not in PARENTS:
            return None
        return int(self.actor.id) if self.actor.id.isdecimal() and self.actor.id.isascii() else 0

    @property
    def portals_teacher(self) -> int | None:
        """The one teacher the teacher portal acts for (0, nobody, if its actor id is not a
        teacher id); None for the other channels."""
        if self.actor.channel is not Channel.teacher:
            return None
        own = self.actor.id
        return int(own) if own.isdecimal() and own.isascii() and int(own) < 2**63 else 0

    def acts_for_teacher(self, teacher_id: int | None) -> None:
        """The teacher portal acts only for the teacher logged in."""
        if self.actor.channel is Channel.teacher and self.actor.id != str(teacher_id):
            raise ForbiddenActor(
                "a teacher acts only for themself",
                actor_id=self.actor.id,
                teacher_id=teacher_id,
            )

    def acts_for_class(self, student_id: int, teacher_id: int | None) -> None:
        self.acts_for_student(student_id)
        self.acts_for_teacher(teacher_id)

    async def read(self, op: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """A read, sent once more on a fresh connection if its pooled one had been dropped
        (connections are not pinged at checkout)."""
        try:
            async with self.sessions() as session:
                return await op(session)
        except DBAPIError as lost:
            if not lost.connection_invalidated:
                raise
        async with self.sessions() as session:
            return await op(session)

    def after_commit(
        self, job: Callable[P, Awaitable[None]], *args: P.args, **kwargs: P.kwargs
    ) -> None:
        """Queue what must follow the transaction of `run` (tell or start a flow): it runs only
        once that transaction has committed, and never if it rolled back."""
        self._after_commit.append(functools.partial(job, *args, **kwargs))

    @property
    def key_scope(self) -> str:
        """Keys are each caller's own: one parent's key never replays another's answer."""
        return f"{self.actor.channel.value}:{self.actor.id}"

    def request_hash(self, body: BaseModel | None) -> str:
        return operation_keys.digest(
            self.path + "\n" + (body.model_dump_json() if body is not None else "")
        )

    async def run(
        self, body: BaseModel | None, out: type[Out], op: Callable[[AsyncSession], Awaitable[Out]]
    ) -> Out:
        """One transaction, then the work `op` queued with `after_commit`. With an
        Idempotency-Key, a repeat of the same request replays the first response instead of
        acting again (and queues nothing)."""
        self._after_commit.clear()
        result = await operation_keys.once(
            self.sessions,
            scope=self.key_scope,
            key=self.idempotency_key,
            request_hash=self.request_hash(body),
            now=self.now,
            out=out,
            op=op,
        )
        jobs, self._after_commit = self._after_commit, []
        for job in jobs:
            await job()
        return result

    async def ask_running_flow(
        self,
        body: BaseModel | None,
        out: type[Out],
        flow_id: str,
        update: UpdateMethodMultiParam[[Any, A], Out],
        arg: A,
        *,
        still_open: Callable[[AsyncSession], Awaitable[int]],
        closed: DomainError,
    ) -> Out:
        """`ask_flow` for an update of a flow that runs: `still_open` refuses, from the
        database, a new call the flow's record says is too late (its flow may be gone); a flow
        Temporal has closed answers `closed`."""

        async def call(flow: FlowCall) -> Out:
            try:
                return await self.flows.ask(flow_id, update, arg, update_id=flow.update_id)
            except FlowClosed as over:
                raise closed from over

        return await self.ask_flow(body, out, call, reserve=still_open)

    async def undo(self, op: Callable[[AsyncSession], Awaitable[None]]) -> None:
        """Take back what `run` committed (its flow could not follow): `op` in a transaction of
        its own, and the Idempotency-Key forgotten, so that a retry acts again."""
        async with self.sessions.begin() as session:
            await op(session)
        if self.idempotency_key is not None:
            await operation_keys.forget(
                self.sessions, self.key_scope, self.idempotency_key, answered=True
            )

    async def ask_flow(
        self,
        body: BaseModel | None,
        out: type[Out],
        call: Callable[[FlowCall], Awaitable[Out]],
        *,
        reserve: Callable[[AsyncSession], Awaitable[int]] | None = None,
        key_suffix: str = "",
    ) -> Out:
        """A call that waits on a workflow, with no transaction open while it waits.

        `reserve` (a short transaction of its own) refuses what can be refused at once and
        reserves the id of the flow to start. With an Idempotency-Key, the key is claimed
        first, and the flow is asked with an update id derived from it: Temporal answers a
        retry, even one after a crash, with the first outcome. A refusal is not remembered.
        """
        if self.idempotency_key is None:
            reserved = None
            if reserve is not None:
                async with self.sessions.begin() as session:
                    reserved = await reserve(session)
            return await call(FlowCall(update_id=None, reserved_id=reserved))
        key = self.idempotency_key + key_suffix
        claim = await operation_keys.claim_for_flow(
            self.sessions,
            scope=self.key_scope,
            key=key,
            request_hash=self.request_hash(body),
            now=self.now,
            reserve=reserve,
        )
        if claim.response is not None:
            return out.model_validate(claim.response)
        try:
            result = await call(
                FlowCall(update_id=f"{self.key_scope}:{key}", reserved_id=claim.reserved_id)
            )
        except (DomainError, WorkflowUpdateFailedError) as refused:
            if not isinstance(refused, DomainError) or refused.status < 500:
                await operation_keys.forget(self.sessions, self.key_scope, key)
            raise
        await operation_keys.remember_answer(
            self.sessions, self.key_scope, key, result.model_dump(mode="json")
        )
        return result


# The channel key, an OpenAPI security scheme; a missing or unknown key is our own 401
# `unauthenticated`, not FastAPI's.
CHANNEL_KEY = HTTPBearer(
    auto_error=False,
    scheme_name="ChannelKey",
    description="`Authorization: Bearer <channel key>`: the calling channel's key "
    "(YUEKE_CHANNEL_KEYS; the dev stack's are `dev-<channel>`, e.g. `dev-parent_h5`).",
)


def _caller(
    request: Request, credentials: HTTPAuthorizationCredentials | None, actor_id: str | None
) -> Actor:
    keys: dict[str, Channel] = request.app.state.settings.channel_keys
    channel = keys.get(credentials.credentials) if credentials is not None else None
    if channel is None:
        raise Unauthenticated("send Authorization: Bearer <channel key>")
    if not actor_id or len(actor_id) > MAX_ACTOR_ID:
        raise Unauthenticated(
            f"send X-Actor-Id: the acting user, 1 to {MAX_ACTOR_ID} characters",
            channel=channel.value,
        )
    return Actor(channel=channel, id=actor_id)


def allowed(operation: Operation) -> Callable[..., Awaitable[Context]]:
    """Dependency: the caller's context, if its channel may perform this operation."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(CHANNEL_KEY)],
        x_actor_id: Annotated[
            str | None,
            Header(
                description="The acting user: a parent channel's student id, the teacher "
                "portal's teacher id, or a staff user of the channel (1 to 64 characters).",
                examples=["1"],
            ),
        ] = None,
        idempotency_key: Annotated[
            str | None,
            Header(
                max_length=200,
                description="Optional on POSTs: the same key and body answer the first "
                "response and act once; the same key with another body is 422.",
                examples=["lp7-batch-0001"],
            ),
        ] = None,
    ) -> Context:
        actor = _caller(request, credentials, x_actor_id)
        if actor.channel not in ALLOWED[operation]:
            raise Forbidden(
                f"channel {actor.channel.value} may not {operation.value}",
                channel=actor.channel.value,
                operation=operation.value,
            )
        state = request.app.state
        now = state.clock()
        return Context(
            actor=actor,
            now=await now if inspect.isawaitable(now) else now,
            rules=state.settings.rules,
            sessions=state.sessions,
            flows=state.flows,
            path=request.url.path,
            idempotency_key=idempotency_key,
            webhooks=state.settings.webhooks,
            tag_flows=state.settings.temporal_search_attributes,
        )

    return dependency


def caller(operation: Operation) -> Any:
    return Depends(allowed(operation))


def describe(operation: Operation, ids: Iterable[str], text: str) -> dict[str, Any]:
    """Route documentation naming the operation IDs (docs/operations.md) and allowed channels,
    and every error status the route can answer, each with the Error body."""
    channels = ", ".join(sorted(c.value for c in ALLOWED[operation]))
    covers = ", ".join(ids) or "-"
    return {
        "description": f"{text}\n\nCovers: {covers}. Channels: {channels}.",
        "openapi_extra": {"x-operation-ids": list(ids), "x-channels": channels.split(", ")},
        "responses": ERROR_RESPONSES,
    }
