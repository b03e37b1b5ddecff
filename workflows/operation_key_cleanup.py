"""Operation-key cleanup: keys older than the retention (7 days) go, in small batches.

An operation key (store/operation_keys.py) is what lets a retried request or activity get its
first answer instead of acting twice. A retry comes within seconds or minutes; after the
retention the key only takes room. The Schedule `operation-key-cleanup` starts this flow every
hour; each batch is one short transaction, so the table is never locked for long.
"""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.operation_key_cleanup import OperationKeyActivities
    from domain.operation_key_cleanup import CleanupOutcome, DeleteExpiredKeys, KeyCleanup
    from workflows.common import STORE_STEP


@workflow.defn
class OperationKeyCleanupWorkflow:
    def __init__(self) -> None:
        self.outcome: CleanupOutcome | None = None

    @workflow.run
    async def run(self, cleanup: KeyCleanup) -> CleanupOutcome:
        before = workflow.now() - cleanup.retention
        self.outcome = CleanupOutcome(before=before, deleted=0, batches=0)
        for _ in range(cleanup.max_batches):
            done = await workflow.execute_activity_method(
                OperationKeyActivities.delete_expired_keys,
                DeleteExpiredKeys(before=before, batch=cleanup.batch),
                **STORE_STEP,
            )
            self.outcome = self.outcome.model_copy(
                update={
                    "deleted": self.outcome.deleted + done.deleted,
                    "batches": self.outcome.batches + 1,
                }
            )
            if done.deleted < cleanup.batch:
                break
        return self.outcome

    @workflow.query
    def state(self) -> CleanupOutcome | None:
        return self.outcome
