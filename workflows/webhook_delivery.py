"""Webhook delivery: one flow per subscription, webhook-{id}.

It reads the subscription's events from the feed in cursor order and sends them one at a time,
each retried with backoff; the cursor moves past an event only once its receiver answered 2xx,
so every event arrives at least once, in order. An event that still fails after the policy's
attempts pauses the subscription (in the database, and the search attribute WebhookState, so
ops find it); the API resumes it, and delivery starts again with that event. An idle
subscription reads the feed again every `poll`. The flow continues as new after
`steps_per_run` activities, carrying its cursor.
"""

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.webhook_delivery import WebhookActivities
    from domain.events import (
        Delivery,
        Event,
        MarkPaused,
        ReadEvents,
        WebhookInput,
        WebhookState,
        WebhookStatus,
        cursor_of,
    )
    from workflows.common import STORE_STEP, WEBHOOK_STATE


# A paused subscription looks at the database once every this many polls.
PAUSED_POLLS = 12


@workflow.defn
class WebhookDeliveryWorkflow:
    def __init__(self) -> None:
        self.hook: WebhookInput | None = None
        self.current = WebhookState.active
        self.last_error: str | None = None
        self.nudged = False

    @workflow.run
    async def run(self, hook: WebhookInput) -> None:
        self.hook = hook
        self.current = WebhookState.paused if hook.paused else WebhookState.active
        steps = 0
        while self.current is not WebhookState.deleted and steps < hook.policy.steps_per_run:
            if self.current is WebhookState.paused:
                # Resumed by the API's signal, or seen in the database within a while.
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: self.current is not WebhookState.paused,
                        timeout=hook.policy.poll * PAUSED_POLLS,
                    )
                    continue
            batch = await workflow.execute_activity_method(
                WebhookActivities.read_subscription_events,
                ReadEvents(
                    subscription_id=hook.subscription_id,
                    after=hook.after,
                    limit=hook.policy.batch,
                ),
                **STORE_STEP,
            )
            steps += 1
            self._become(batch.state)
            if batch.state is not WebhookState.active:
                continue
            for event in batch.events:
                steps += 1
                if self.current is not WebhookState.active or not await self._deliver(hook, event):
                    break
            if not batch.events:
                self.nudged = False
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: self.nudged or self.current is not WebhookState.active,
                        timeout=hook.policy.poll,
                    )
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self.current is not WebhookState.deleted:
            workflow.continue_as_new(
                hook.model_copy(update={"paused": self.current is WebhookState.paused})
            )

    async def _deliver(self, hook: WebhookInput, event: Event) -> bool:
        """Send one event; False if delivery stops here (paused or deleted)."""
        policy = hook.policy
        try:
            outcome = await workflow.execute_activity_method(
                WebhookActivities.deliver_event,
                Delivery(subscription_id=hook.subscription_id, event=event, timeout=policy.timeout),
                start_to_close_timeout=policy.timeout + timedelta(seconds=5),
                schedule_to_close_timeout=policy.give_up_after,
                retry_policy=RetryPolicy(
                    initial_interval=policy.first_retry,
                    backoff_coefficient=2.0,
                    maximum_interval=policy.max_retry,
                    maximum_attempts=policy.max_attempts,
                ),
            )
        except ActivityError as failed:
            # The kind of failure only (the activity's message): the channel reads it.
            cause = failed.cause
            self.last_error = cause.message if isinstance(cause, FailureError) else str(failed)
            state = await workflow.execute_activity_method(
                WebhookActivities.pause_failing_subscription,
                MarkPaused(
                    subscription_id=hook.subscription_id,
                    reason=f"event {event.id} failed: {self.last_error}",
                    now=workflow.now(),
                ),
                **STORE_STEP,
            )
            self._become(state)
            return False
        if outcome is not WebhookState.active:
            self._become(outcome)
            return False
        hook.after = cursor_of(event)
        hook.delivered += 1
        return True

    def _become(self, state: WebhookState) -> None:
        if state is self.current:
            return
        self.current = state
        assert self.hook is not None
        if self.hook.tag and state is not WebhookState.deleted:
            workflow.upsert_search_attributes([WEBHOOK_STATE.value_set(state.value)])

    @workflow.signal
    def changed(self, state: WebhookState) -> None:
        """The API paused, resumed or deleted the subscription (recorded in the database)."""
        self._become(state)
        self.nudged = True

    @workflow.query
    def state(self) -> WebhookStatus | None:
        if self.hook is None:
            return None
        return WebhookStatus(
            subscription_id=self.hook.subscription_id,
            state=self.current,
            after=None if self.hook.after is None else str(self.hook.after),
            delivered=self.hook.delivered,
            last_error=self.last_error,
        )
