"""teacher penalties

A teacher's penalty (TCH-5 teacher cancel; a class finished as `teacher_no_show` or
`teacher_it_issue`) is a row of `teacher_penalties`, written in the transaction of the
cancel or the label. A penalty a later label or an undo-finish takes back keeps its row, with
`revoked_at` and who revoked it; at most one standing penalty per class and
teacher (`uq_teacher_penalties_standing_class`).

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = ("teacher_cancel", "teacher_no_show", "teacher_it_issue")


def upgrade() -> None:
    op.create_table(
        "teacher_penalties",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("teacher_id", sa.BigInteger(), nullable=False),
        sa.Column("class_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                *KINDS, name="penaltykind", native_enum=False, create_constraint=True, length=24
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_channel", sa.String(length=24), nullable=True),
        sa.Column("revoked_actor_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["teacher_id"], ["teachers.id"], name=op.f("fk_teacher_penalties_teacher_id_teachers")
        ),
        sa.ForeignKeyConstraint(
            ["class_id"], ["classes.id"], name=op.f("fk_teacher_penalties_class_id_classes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teacher_penalties")),
    )
    op.create_index(
        op.f("ix_teacher_penalties_teacher_id"), "teacher_penalties", ["teacher_id", "id"]
    )
    op.create_index(
        "uq_teacher_penalties_standing_class",
        "teacher_penalties",
        ["class_id", "teacher_id"],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("teacher_penalties")
