"""operation keys remember the flow they reserved

A POST that waits on a workflow claims its Idempotency-Key in a transaction of its own, before
it calls Temporal; the id it reserves for the new flow (class request, contract, booking run)
is kept with the key, so a retry asks the same flow instead of starting another.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("operation_keys", sa.Column("reserved_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("operation_keys", "reserved_id")
