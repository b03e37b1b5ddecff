"""over-booking: over-booked classes and in-class teacher swaps

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=24)


COURSE_TYPES = ("major", "special", "l7_major", "trial", "advanced", "open")
LABELS = (
    "as_scheduled",
    "student_no_show",
    "teacher_no_show",
    "student_it_issue",
    "teacher_it_issue",
    "system_issue",
)
SOURCES = ("overbook_pool", "general")


def upgrade() -> None:
    op.create_table(
        "overbooked_classes",
        sa.Column("class_id", sa.BigInteger(), nullable=False),
        sa.Column("student_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "kind", _enum("overbookkind", "overbook", "real_booking", "instant"), nullable=False
        ),
        sa.Column("course_type", _enum("coursetype", *COURSE_TYPES), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "state",
            _enum("overbookstate", "booked", "waiting", "matched", "failed", "finished"),
            nullable=False,
        ),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("matched_from", _enum("matchsource", *SOURCES), nullable=True),
        sa.Column("wait_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["class_id"], ["classes.id"], name=op.f("fk_overbooked_classes_class_id_classes")
        ),
        sa.ForeignKeyConstraint(
            ["student_id"], ["students.id"], name=op.f("fk_overbooked_classes_student_id_students")
        ),
        sa.PrimaryKeyConstraint("class_id", name=op.f("pk_overbooked_classes")),
    )
    op.create_index(
        "ix_overbooked_classes_start_state", "overbooked_classes", ["start_at", "state"]
    )
    op.create_index(op.f("ix_overbooked_classes_student_id"), "overbooked_classes", ["student_id"])
    op.create_table(
        "teacher_swaps",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("class_id", sa.BigInteger(), nullable=False),
        sa.Column("old_teacher_id", sa.BigInteger(), nullable=False),
        sa.Column("old_timeslot_id", sa.BigInteger(), nullable=False),
        sa.Column("new_teacher_id", sa.BigInteger(), nullable=False),
        sa.Column("new_timeslot_id", sa.BigInteger(), nullable=False),
        sa.Column("new_from", _enum("matchsource", *SOURCES), nullable=False),
        sa.Column("old_teacher_label", _enum("classlabel", *LABELS), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["class_id"], ["classes.id"], name=op.f("fk_teacher_swaps_class_id_classes")
        ),
        sa.ForeignKeyConstraint(
            ["old_teacher_id"],
            ["teachers.id"],
            name=op.f("fk_teacher_swaps_old_teacher_id_teachers"),
        ),
        sa.ForeignKeyConstraint(
            ["old_timeslot_id"],
            ["timeslots.id"],
            name=op.f("fk_teacher_swaps_old_timeslot_id_timeslots"),
        ),
        sa.ForeignKeyConstraint(
            ["new_teacher_id"],
            ["teachers.id"],
            name=op.f("fk_teacher_swaps_new_teacher_id_teachers"),
        ),
        sa.ForeignKeyConstraint(
            ["new_timeslot_id"],
            ["timeslots.id"],
            name=op.f("fk_teacher_swaps_new_timeslot_id_timeslots"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teacher_swaps")),
    )
    op.create_index(op.f("ix_teacher_swaps_class_id"), "teacher_swaps", ["class_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_teacher_swaps_class_id"), table_name="teacher_swaps")
    op.drop_table("teacher_swaps")
    op.drop_index(op.f("ix_overbooked_classes_student_id"), table_name="overbooked_classes")
    op.drop_index("ix_overbooked_classes_start_state", table_name="overbooked_classes")
    op.drop_table("overbooked_classes")
