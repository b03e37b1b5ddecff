"""Activity of the operation-key cleanup: one batch of expired keys deleted in one
transaction. Deleting what is already gone deletes nothing, so a retry needs no key of its
own."""

from temporalio import activity

from activities import StoreActivities
from domain.operation_key_cleanup import DeletedKeys, DeleteExpiredKeys
from store import operation_keys


class OperationKeyActivities(StoreActivities):
    @activity.defn
    async def delete_expired_keys(self, step: DeleteExpiredKeys) -> DeletedKeys:
        async with self.sessions.begin() as session:
            deleted = await operation_keys.delete_expired(
                session, before=step.before, limit=step.batch
            )
        return DeletedKeys(deleted=deleted)
