"""rules in PostgreSQL

Rules that concurrency could break, held by the database:
- classes start on the :00/:30 grid to the second (`ck_classes_on_grid`), and the timeslots'
  grid check no longer rounds a fraction of a second onto the grid;
- a slot held for a student (a teacher-cancel offer) is held at most until it starts
  (`ck_timeslots_held_until_start`), and a hold expires after it was made
  (`ck_teacher_cancels_expires_after_created`);
- operation keys are found by age (`ix_operation_keys_created_at`), for the hourly cleanup of
  those past their retention;
- a real booking (H5-10) registers one student per parent account of a channel
  (`students.external_channel`, `external_account_id`, `uq_students_external_account`), and
  a student's trial credit is granted once (`uq_ledger_entries_one_trial_grant`).

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# On the 30-minute grid, to the second: the epoch as numeric keeps fractions of a second.
ON_GRID = "extract(epoch from start_at) % 1800 = 0"
OLD_ON_GRID = "extract(epoch from start_at)::bigint % 1800 = 0"
HELD_UNTIL_START = "expires_at IS NULL OR expires_at <= start_at"
EXPIRES_AFTER_CREATED = "expires_at > created_at"


def upgrade() -> None:
    op.create_check_constraint(op.f("ck_classes_on_grid"), "classes", ON_GRID)
    op.drop_constraint(op.f("ck_timeslots_on_grid"), "timeslots", type_="check")
    op.create_check_constraint(op.f("ck_timeslots_on_grid"), "timeslots", ON_GRID)
    # Offers made before this rule were held for 24 h even when they started sooner.
    op.execute("UPDATE timeslots SET expires_at = start_at WHERE expires_at > start_at")
    op.create_check_constraint(op.f("ck_timeslots_held_until_start"), "timeslots", HELD_UNTIL_START)
    # A hold extended into its own past before this rule: over then, over now.
    op.execute(
        "UPDATE teacher_cancels SET expires_at = created_at + interval '1 second' "
        "WHERE expires_at <= created_at"
    )
    op.create_check_constraint(
        op.f("ck_teacher_cancels_expires_after_created"), "teacher_cancels", EXPIRES_AFTER_CREATED
    )
    op.create_index("ix_operation_keys_created_at", "operation_keys", ["created_at"])
    op.add_column("students", sa.Column("external_channel", sa.String(length=24), nullable=True))
    op.add_column("students", sa.Column("external_account_id", sa.String(length=64), nullable=True))
    op.create_check_constraint(
        op.f("ck_students_external_account_whole"),
        "students",
        "(external_channel IS NULL) = (external_account_id IS NULL)",
    )
    op.create_index(
        "uq_students_external_account",
        "students",
        ["external_channel", "external_account_id"],
        unique=True,
        postgresql_where=sa.text("external_account_id IS NOT NULL"),
    )
    op.create_index(
        "uq_ledger_entries_one_trial_grant",
        "ledger_entries",
        ["student_id"],
        unique=True,
        postgresql_where=sa.text("reason = 'trial_grant'"),
    )


def downgrade() -> None:
    op.drop_index("uq_ledger_entries_one_trial_grant", table_name="ledger_entries")
    op.drop_index("uq_students_external_account", table_name="students")
    op.drop_constraint(op.f("ck_students_external_account_whole"), "students", type_="check")
    op.drop_column("students", "external_account_id")
    op.drop_column("students", "external_channel")
    op.drop_index("ix_operation_keys_created_at", table_name="operation_keys")
    op.drop_constraint(
        op.f("ck_teacher_cancels_expires_after_created"), "teacher_cancels", type_="check"
    )
    op.drop_constraint(op.f("ck_timeslots_held_until_start"), "timeslots", type_="check")
    op.drop_constraint(op.f("ck_timeslots_on_grid"), "timeslots", type_="check")
    op.create_check_constraint(op.f("ck_timeslots_on_grid"), "timeslots", OLD_ON_GRID)
    op.drop_constraint(op.f("ck_classes_on_grid"), "classes", type_="check")
