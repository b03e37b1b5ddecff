"""How the API talks to workflows: update-with-start when the caller needs an answer, updates,
signals and queries; one Temporal client per process, connected on first use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import (
    Client,
    Interceptor,
    RPCTimeoutOrCancelledError,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import (
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.types import MethodAsyncNoParam
from temporalio.workflow import UpdateMethodMultiParam

from api import metrics
from domain.class_request import ClassRequestInput, RequestView
from domain.errors import FlowClosed, TemporalUnavailable
from domain.overbooking import TeacherChanged
from domain.teacher_cancel import HeldSlotBooked
from store import class_requests, fake_cancels, overbooking
from workflows.class_request import ClassRequestWorkflow
from workflows.common import FLOW, FlowKind, search_attributes
from workflows.fake_cancel import FakeCancelWorkflow
from workflows.overbooked_class import OverbookedClassWorkflow
from workflows.teacher_cancel import TeacherCancelHoldWorkflow
from yueke import temporal
from yueke.settings import Settings

if TYPE_CHECKING:
    from api.context import Context, FlowCall
    from api.schemas import NewRequest

log = logging.getLogger(__name__)


SelfType = TypeVar("SelfType")
ParamType = TypeVar("ParamType")
ReturnType = TypeVar("ReturnType")
AnswerType = TypeVar("AnswerType")


# Detached calls to Temporal in flight at once, per API process, for `Flows.later` and, apart,
# for `Flows.paced`: paced calls never hold up the calls that are needed now.
DETACHED_AT_ONCE = 4
# Paced calls waiting their turn, per API process (`Flows.paced`); past this they are dropped.
PACED_BACKLOG = 100_000


class Flows:
    """Every call waits a bounded time: a Temporal that is down or slow answers 503
    temporal_unavailable instead of holding the request (and nothing else waits with it)."""

    def __init__(
        self,
        settings: Settings,
        client: Client | None = None,
        interceptors: Sequence[Interceptor] = (),
    ) -> None:
        self._settings = settings
        self._client = client
        self._interceptors = interceptors
        self._lock = asyncio.Lock()
        self._detached: set[asyncio.Task[None]] = set()
        self._later_slots = asyncio.Semaphore(DETACHED_AT_ONCE)
        self._paced_slots = asyncio.Semaphore(DETACHED_AT_ONCE)
        self._paced: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue(PACED_BACKLOG)
        self._pacer: asyncio.Task[None] | None = None

    def later(self, call: Callable[[], Awaitable[None]]) -> None:
        """A call to Temporal that no answer waits for (a waiting student's wake, a match
        after the start), detached from the request and a few at a time: neither the caller's
        connection nor a classroom spike waits for Temporal, and Temporal takes them at its
        pace. Each such call is one a flow also finds out by itself at its next step."""

        async def detached() -> None:
            async with self._later_slots:
                await call()

        self._detach(detached())

    def paced(self, call: Callable[[], Awaitable[None]]) -> None:
        """A detached call that nobody needs within seconds (a flow told what it also reads
        by itself at its next step): sent at most `temporal_paced_calls_per_second`, a few at
        a time, so a classroom spike's thousands reach Temporal after the spike rather than
        taking its CPU during it. The backlog waits in a bounded queue; when it is full the
        call is dropped with a warning."""
        if self._pacer is None:
            self._pacer = asyncio.get_running_loop().create_task(self._pace())
        try:
            self._paced.put_nowait(call)
        except asyncio.QueueFull:
            log.warning("%d paced calls to Temporal wait already: one dropped", PACED_BACKLOG)

    async def _pace(self) -> None:
        interval = 1 / self._settings.temporal_paced_calls_per_second
        while True:
            call = await self._paced.get()
            await self._paced_slots.acquire()

            async def sent(call: Callable[[], Awaitable[None]] = call) -> None:
                try:
                    await call()
                finally:
                    self._paced_slots.release()

            self._detach(sent())
            await asyncio.sleep(interval)

    def _detach(self, call: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(call)
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)

    async def close(self) -> None:
        """At shutdown: the detached calls in flight are cancelled and those not sent yet are
        dropped (each flow finds out by itself at its next step)."""
        pacer, self._pacer = self._pacer, None
        if pacer is not None:
            pacer.cancel()
        for task in list(self._detached):
            task.cancel()
        await asyncio.gather(*self._detached, *filter(None, [pacer]), return_exceptions=True)

    async def client(self) -> Client:
        """Connects on first use, so the booking API starts (and books) while Temporal is down;
        a failed connection is tried again by the next call."""
        async with self._lock:
            if self._client is None:
                try:
                    async with asyncio.timeout(self._settings.temporal_connect_timeout):
                        self._client = await temporal.connect(
                            self._settings, interceptors=self._interceptors
                        )
                except (RuntimeError, TimeoutError) as exc:
                    raise TemporalUnavailable(
                        "Temporal cannot be reached", target=self._settings.temporal_target
                    ) from exc
            return self._client

    @contextlib.asynccontextmanager
    async def _bounded(self, flow_id: str, *, asked: bool = True) -> AsyncIterator[None]:
        """At most flow_answer_timeout; a flow asked (its record exists) that Temporal no
        longer has, or has closed, is over."""
        seconds = self._settings.flow_answer_timeout
        try:
            async with asyncio.timeout(seconds):
                yield
        # An update call cut off by the timeout surfaces as temporalio's own error.
        except (TimeoutError, RPCTimeoutOrCancelledError) as exc:
            raise TemporalUnavailable(
                f"the flow did not answer within {seconds:g} s; retry with the same "
                "Idempotency-Key",
                flow_id=flow_id,
            ) from exc
        except RPCError as exc:
            if asked and exc.status is RPCStatusCode.NOT_FOUND:
                raise FlowClosed("the flow is over", flow_id=flow_id) from exc
            if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                raise TemporalUnavailable(exc.message, flow_id=flow_id) from exc
            raise

    async def start_and_ask(
        self,
        run: Callable[[SelfType, ParamType], Awaitable[ReturnType]],
        arg: ParamType,
        *,
        flow_id: str,
        update: UpdateMethodMultiParam[[SelfType], AnswerType],
        search_attributes: TypedSearchAttributes,
        update_id: str | None = None,
    ) -> AnswerType:
        """Start the flow (or join the one of that id, running or over) and wait for update's
        answer.

        Two calls rather than update-with-start: the update only reads the flow's first step,
        so a retry after a failure between them is safe, and the time-skipping test server
        (which lacks update-with-start) runs the same code as production.
        """
        async with self._bounded(flow_id):
            handle = await self.start(
                run, arg, flow_id=flow_id, search_attributes=search_attributes
            )
            return await handle.execute_update(update, id=update_id)

    async def start(
        self,
        run: Callable[[SelfType, ParamType], Awaitable[ReturnType]],
        arg: ParamType,
        *,
        flow_id: str,
        search_attributes: TypedSearchAttributes,
    ) -> WorkflowHandle[SelfType, ReturnType]:
        """Start the flow, or leave the one of that id as it is; no answer awaited. A business
        key names one flow ever: a flow that is over is never started again."""
        client = await self.client()
        async with self._bounded(flow_id):
            try:
                handle = await client.start_workflow(
                    run,
                    arg,
                    id=flow_id,
                    task_queue=self._settings.temporal_task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    search_attributes=search_attributes
                    if self._settings.temporal_search_attributes
                    else None,
                )
            except WorkflowAlreadyStartedError:
                return client.get_workflow_handle(flow_id)
            metrics.flow_started(search_attributes.get(FLOW) or "")
            return handle

    async def run_now(
        self,
        run: MethodAsyncNoParam[SelfType, ReturnType],
        *,
        flow_id: str,
        search_attributes: TypedSearchAttributes,
    ) -> ReturnType:
        """Start a flow that takes no input (a manual run of a scheduled job) and wait for its
        result."""
        client = await self.client()
        async with self._bounded(flow_id):
            handle = await client.start_workflow(
                run,
                id=flow_id,
                task_queue=self._settings.temporal_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                search_attributes=search_attributes
                if self._settings.temporal_search_attributes
                else None,
            )
            return await handle.result()

    async def ask(
        self,
        flow_id: str,
        update: UpdateMethodMultiParam[[Any, ParamType], AnswerType],
        arg: ParamType,
        *,
        update_id: str | None = None,
    ) -> AnswerType:
        handle = (await self.client()).get_workflow_handle(flow_id)
        async with self._bounded(flow_id):
            return await handle.execute_update(update, arg, id=update_id)

    async def tell(
        self,
        flow_id: str,
        signal: Callable[[SelfType, ParamType], Awaitable[None] | None],
        arg: ParamType,
    ) -> None:
        handle = (await self.client()).get_workflow_handle(flow_id)
        async with self._bounded(flow_id):
            await handle.signal(signal, arg)

    async def describe(self, flow_id: str) -> tuple[WorkflowExecutionStatus | None, Any]:
        """The flow's status and its `state` query."""
        handle = (await self.client()).get_workflow_handle(flow_id)
        async with self._bounded(flow_id, asked=False):
            description = await handle.describe()
            return description.status, await handle.query("state")

    async def tell_hold_booked(self, flow_id: str, class_id: int, timeslot_id: int) -> None:
        """After a booking of an offered slot committed: the other offered slots went in its
        transaction, the hold's flow only stops its timer. If Temporal cannot hear it now, the
        timer's run finds the hold already booked. The same for a fake cancel's held slot
        (TMK-4, CC-4)."""
        booked = HeldSlotBooked(class_id=class_id, timeslot_id=timeslot_id)
        try:
            if flow_id.startswith(fake_cancels.FLOW):
                await self.tell(flow_id, FakeCancelWorkflow.held_slot_booked, booked)
            else:
                await self.tell(flow_id, TeacherCancelHoldWorkflow.held_slot_booked, booked)
        except Exception as exc:
            log.warning("could not tell %s that a held slot was booked: %s", flow_id, exc)

    async def tell_teacher_changed(
        self, class_id: int, teacher_id: int, changed_at: datetime
    ) -> None:
        """After a commit that gave an over-booked class a teacher or another one: its flow
        reads the class and tags itself with the teacher. If Temporal cannot hear it now, the
        flow's next step (a retry, the close) reads the teacher all the same."""
        flow_id = overbooking.flow_id(class_id)
        changed = TeacherChanged(class_id=class_id, teacher_id=teacher_id, changed_at=changed_at)
        try:
            await self.tell(flow_id, OverbookedClassWorkflow.teacher_changed, changed)
        except Exception as exc:
            log.warning("could not tell %s that its teacher changed: %s", flow_id, exc)


async def request_class(ctx: Context, body: NewRequest, *, key_suffix: str = "") -> RequestView:
    """Refuse what can be refused at once, then start the class request's flow and wait for
    its held payment (TCH-3, LP-6)."""

    async def reserve(session: AsyncSession) -> int:
        await class_requests.check_request(
            session,
            student_id=body.student_id,
            teacher_id=body.teacher_id,
            start_at=body.start_at,
            course_type=body.course_type,
            now=ctx.now,
            rules=ctx.rules,
        )
        return await class_requests.next_request_id(session)

    async def call(flow: FlowCall) -> RequestView:
        return await ctx.flows.start_and_ask(
            ClassRequestWorkflow.run,
            ClassRequestInput(
                request_id=flow.reserved,
                student_id=body.student_id,
                teacher_id=body.teacher_id,
                start_at=body.start_at,
                course_type=body.course_type,
                payment=body.payment,
                actor=ctx.actor,
            ),
            flow_id=class_requests.flow_id(flow.reserved),
            update=ClassRequestWorkflow.submitted,
            update_id=flow.update_id,
            search_attributes=search_attributes(
                FlowKind.class_request,
                channel=ctx.actor.channel.value,
                student_id=body.student_id,
                teacher_ids=[body.teacher_id],
            ),
        )

    return await ctx.ask_flow(body, RequestView, call, reserve=reserve, key_suffix=key_suffix)
