"""How the API talks to workflows: update-with-start when the caller needs an answer, updates,
signals and queries; one Temporal client per process, connected on first use."""

import asyncio
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy

from yueke import temporal
from yueke.settings import Settings


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
        run: Any,
        arg: Any,
        *,
        flow_id: str,
        update: Any,
        search_attributes: TypedSearchAttributes,
    ) -> Any:
        """Start the flow (or join the running one of that id) and wait for update's answer.

        Two calls rather than update-with-start: the update only reads the flow's first step,
        so a retry after a failure between them is safe, and the time-skipping test server
        (which lacks update-with-start) runs the same code as production.
        """
        handle = await self.start(run, arg, flow_id=flow_id, search_attributes=search_attributes)
        return await handle.execute_update(update)

    async def start(
        self, run: Any, *args: Any, flow_id: str, search_attributes: TypedSearchAttributes
    ) -> WorkflowHandle[Any, Any]:
        """Start the flow, or leave the running one of that id as it is; no answer awaited."""
        return await (await self.client()).start_workflow(
            run,
            args=list(args),
            id=flow_id,
            task_queue=self._settings.temporal_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=search_attributes
            if self._settings.temporal_search_attributes
            else None,
        )

    async def ask(self, flow_id: str, update: Any, arg: Any) -> Any:
        handle = (await self.client()).get_workflow_handle(flow_id)
        return await handle.execute_update(update, arg)

    async def tell(self, flow_id: str, signal: Any, arg: Any) -> None:
        handle = (await self.client()).get_workflow_handle(flow_id)
        await handle.signal(signal, arg)

    async def describe(self, flow_id: str) -> tuple[WorkflowExecutionStatus | None, Any]:
        """The flow's status and its `state` query."""
        handle = (await self.client()).get_workflow_handle(flow_id)
        description = await handle.describe()
        return description.status, await handle.query("state")
