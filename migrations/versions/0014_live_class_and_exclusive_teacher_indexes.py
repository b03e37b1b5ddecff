"""indexes for the week's live classes of a teacher and for exclusive teachers

`ix_classes_teacher_start` becomes `ix_classes_live_teacher_start`, partial on live classes:
auto-booking's any-teacher spread counts each teacher's live classes of the week, which this
index answers without reading cancelled classes (and, where the visibility map allows, without
the table); nothing reads a teacher's cancelled classes through it.
`ix_students_exclusive_teacher_id` answers "is this teacher someone's exclusive teacher", which
booking and availability ask for every slot inside the exclusive-teacher window; only students
with an exclusive teacher are in it.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Built without locking out writes to the busy tables (outside a transaction); the old
    # index goes once the new one is there.
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_classes_live_teacher_start",
            "classes",
            ["teacher_id", "start_at"],
            postgresql_where=sa.text("state <> 'cancelled'"),
            postgresql_concurrently=True,
        )
        op.drop_index(
            "ix_classes_teacher_start", table_name="classes", postgresql_concurrently=True
        )
        op.create_index(
            "ix_students_exclusive_teacher_id",
            "students",
            ["exclusive_teacher_id"],
            postgresql_where=sa.text("exclusive_teacher_id IS NOT NULL"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    op.drop_index("ix_students_exclusive_teacher_id", table_name="students")
    op.drop_index("ix_classes_live_teacher_start", table_name="classes")
    op.create_index("ix_classes_teacher_start", "classes", ["teacher_id", "start_at"])
