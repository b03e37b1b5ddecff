"""How the API talks to workflows: update-with-start when the caller needs an answer, updates,
signals and queries; one Temporal client per process, connected on first use."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.types import MethodAsyncNoParam
from temporalio.workflow import UpdateMethodMultiParam

from domain.class_request import ClassRequestInput, RequestView
from domain.teacher_cancel import HeldSlotBooked
from store import class_requests
from workflows.class_request import ClassRequestWorkflow
from workflows.common import search_attributes
from workflows.teacher_cancel import TeacherCancelHoldWorkflow
from yueke import temporal
from yueke.settings import Settings

if TYPE_CHECKING:
    from api.context import Context
    from api.schemas import NewRequest

log = logging.getLogger(__name__)


SelfType = TypeVar("SelfType")
ParamType = TypeVar("ParamType")
ReturnType = TypeVar("ReturnType")
AnswerType = TypeVar("AnswerType")


class Flows:
    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self._settings = settings
        self._client = client
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        """Connects on first use, so the booking API starts (and books) while Temporal is down."""
        async with self._lock:
            if self._client is None:
                self._client = await temporal.connect(self._settings)
            return self._client

    async def start_and_ask(
        self,
        run: Callable[[SelfType, ParamType], Awaitable[ReturnType]],
        arg: ParamType,
        *,
        flow_id: str,
        update: UpdateMethodMultiParam[[SelfType], AnswerType],
        search_attributes: TypedSearchAttributes,
    ) -> AnswerType:
        """Start the flow (or join the running one of that id) and wait for update's answer.

        Two calls rather than update-with-start: the update only reads the flow's first step,
        so a retry after a failure between them is safe, and the time-skipping test server
        (which lacks update-with-start) runs the same code as production.
        """
        handle = await self.start(run, arg, flow_id=flow_id, search_attributes=search_attributes)
        return await handle.execute_update(update)

    async def start(
        self,
        run: Callable[[SelfType, ParamType], Awaitable[ReturnType]],
        arg: ParamType,
        *,
        flow_id: str,
        search_attributes: TypedSearchAttributes,
    ) -> WorkflowHandle[SelfType, ReturnType]:
        """Start the flow, or leave the running one of that id as it is; no answer awaited."""
        return await (await self.client()).start_workflow(
            run,
            arg,
            id=flow_id,
            task_queue=self._settings.temporal_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=search_attributes
            if self._settings.temporal_search_attributes
            else None,
        )

    async def start_without_input(
        self,
        run: MethodAsyncNoParam[SelfType, ReturnType],
        *,
        flow_id: str,
        search_attributes: TypedSearchAttributes,
    ) -> WorkflowHandle[SelfType, ReturnType]:
        """`start` for a flow whose run takes no argument (a manual run of a scheduled job)."""
        return await (await self.client()).start_workflow(
            run,
            id=flow_id,
            task_queue=self._settings.temporal_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=search_attributes
            if self._settings.temporal_search_attributes
            else None,
        )

    async def ask(
        self,
        flow_id: str,
        update: UpdateMethodMultiParam[[Any, ParamType], AnswerType],
        arg: ParamType,
    ) -> AnswerType:
        handle = (await self.client()).get_workflow_handle(flow_id)
        return await handle.execute_update(update, arg)

    async def tell(
        self,
        flow_id: str,
        signal: Callable[[SelfType, ParamType], Awaitable[None] | None],
        arg: ParamType,
    ) -> None:
        handle = (await self.client()).get_workflow_handle(flow_id)
        await handle.signal(signal, arg)

    async def describe(self, flow_id: str) -> tuple[WorkflowExecutionStatus | None, Any]:
        """The flow's status and its `state` query."""
        handle = (await self.client()).get_workflow_handle(flow_id)
        description = await handle.describe()
        return description.status, await handle.query("state")

    async def tell_hold_booked(self, flow_id: str, class_id: int, timeslot_id: int) -> None:
        """After a booking of an offered slot committed: the other offered slots went in its
        transaction, the hold's flow only stops its timer. If Temporal cannot hear it now, the
        timer's run finds the hold already booked."""
        try:
            await self.tell(
                flow_id,
                TeacherCancelHoldWorkflow.held_slot_booked,
                HeldSlotBooked(class_id=class_id, timeslot_id=timeslot_id),
            )
        except Exception as exc:
            log.warning("could not tell %s that a held slot was booked: %s", flow_id, exc)


async def request_class(ctx: Context, body: NewRequest) -> RequestView:
    """Refuse what can be refused at once, then start the flow and wait for the held payment."""

    async def check(session: AsyncSession) -> int:
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

    request_id = await ctx.read(check)
    flow_input = ClassRequestInput(
        request_id=request_id,
        student_id=body.student_id,
        teacher_id=body.teacher_id,
        start_at=body.start_at,
        course_type=body.course_type,
        payment=body.payment,
        actor=ctx.actor,
    )
    view: RequestView = await ctx.flows.start_and_ask(
        ClassRequestWorkflow.run,
        flow_input,
        flow_id=class_requests.flow_id(request_id),
        update=ClassRequestWorkflow.submitted,
        search_attributes=search_attributes(
            "class_request",
            student_id=body.student_id,
            teacher_id=body.teacher_id,
            channel=ctx.actor.channel.value,
        ),
    )
    return view
