"""finish / labels, dino-home priority and learning progress

Finishing a class (FM-3, FM-4, LP-4, CC-7) and dino-home priority (SD-3) use the existing
classes columns (state 'finished', label); this revision adds the learning progress of CUR-1,
TMK-7 and CC-8.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "learning_progress",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("student_id", sa.BigInteger(), nullable=False),
        sa.Column("course", sa.String(length=32), nullable=False),
        sa.Column("next_lesson", sa.Integer(), nullable=False),
        sa.Column("lessons", sa.Integer(), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "active",
                "completed",
                name="progressstate",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("updated_at", STAMP, nullable=False),
        sa.CheckConstraint(
            "next_lesson >= 1", name=op.f("ck_learning_progress_next_lesson_positive")
        ),
        sa.CheckConstraint(
            "lessons IS NULL OR lessons >= 1", name=op.f("ck_learning_progress_lessons_positive")
        ),
        sa.ForeignKeyConstraint(
            ["student_id"], ["students.id"], name=op.f("fk_learning_progress_student_id_students")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learning_progress")),
    )
    op.create_index(
        "uq_learning_progress_student_course",
        "learning_progress",
        ["student_id", "course"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_learning_progress_student_course", table_name="learning_progress")
    op.drop_table("learning_progress")
