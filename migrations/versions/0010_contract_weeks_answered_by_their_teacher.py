"""contract weeks answered by their teacher

A dual-excellence contract books W1 and W2 when it is created; each later week's slots are
offered to its teachers (SD-7, TCH-6), who agree, decline or let the offer expire. Each
contract week gets its state, its teacher, the offered slot and the answer's deadline and
moment. Weeks recorded before are `booked` (with a class) or `unbooked` (with a reason).

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAMP = sa.DateTime(timezone=True)
STATES = ("awaiting", "booked", "unbooked", "declined", "expired", "withdrawn")


def upgrade() -> None:
    op.add_column(
        "contract_weeks",
        sa.Column("state", sa.String(length=24), nullable=False, server_default="booked"),
    )
    op.execute("UPDATE contract_weeks SET state = 'unbooked' WHERE class_id IS NULL")
    op.alter_column("contract_weeks", "state", server_default=None)
    op.create_check_constraint(
        op.f("ck_contract_weeks_contractweekstate"),
        "contract_weeks",
        "state IN (" + ", ".join(f"'{s}'" for s in STATES) + ")",
    )
    op.add_column("contract_weeks", sa.Column("teacher_id", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE contract_weeks w SET teacher_id = CASE w.role WHEN 'chinese' "
        "THEN c.chinese_teacher_id ELSE c.foreign_teacher_id END FROM contracts c "
        "WHERE c.id = w.contract_id"
    )
    op.alter_column("contract_weeks", "teacher_id", nullable=False)
    op.create_foreign_key(
        op.f("fk_contract_weeks_teacher_id_teachers"),
        "contract_weeks",
        "teachers",
        ["teacher_id"],
        ["id"],
    )
    op.add_column("contract_weeks", sa.Column("timeslot_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_contract_weeks_timeslot_id_timeslots"),
        "contract_weeks",
        "timeslots",
        ["timeslot_id"],
        ["id"],
    )
    op.add_column("contract_weeks", sa.Column("answer_by", STAMP, nullable=True))
    op.add_column("contract_weeks", sa.Column("answered_at", STAMP, nullable=True))
    op.alter_column(
        "contract_weeks", "reason", type_=sa.String(length=500), existing_type=sa.String(64)
    )
    op.create_check_constraint(
        op.f("ck_contract_weeks_booked_has_class"),
        "contract_weeks",
        "state <> 'booked' OR class_id IS NOT NULL",
    )
    op.create_check_constraint(
        op.f("ck_contract_weeks_awaiting_has_slot"),
        "contract_weeks",
        "state <> 'awaiting' OR (timeslot_id IS NOT NULL AND answer_by IS NOT NULL)",
    )
    op.create_index(
        "ix_contract_weeks_awaiting",
        "contract_weeks",
        ["teacher_id", "answer_by"],
        postgresql_where=sa.text("state = 'awaiting'"),
    )


def downgrade() -> None:
    # Offered weeks go with their state: their open slots become general inventory.
    op.execute(
        "UPDATE timeslots t SET direction = 'general', direction_target = NULL "
        "FROM contract_weeks w WHERE w.timeslot_id = t.id AND w.state = 'awaiting' "
        "AND t.state = 'open'"
    )
    op.execute("DELETE FROM contract_weeks WHERE state NOT IN ('booked', 'unbooked')")
    op.drop_index("ix_contract_weeks_awaiting", table_name="contract_weeks")
    op.drop_constraint(op.f("ck_contract_weeks_awaiting_has_slot"), "contract_weeks", "check")
    op.drop_constraint(op.f("ck_contract_weeks_booked_has_class"), "contract_weeks", "check")
    op.execute("UPDATE contract_weeks SET reason = left(reason, 64)")
    op.alter_column(
        "contract_weeks", "reason", type_=sa.String(length=64), existing_type=sa.String(500)
    )
    op.drop_column("contract_weeks", "answered_at")
    op.drop_column("contract_weeks", "answer_by")
    op.drop_constraint(
        op.f("fk_contract_weeks_timeslot_id_timeslots"), "contract_weeks", "foreignkey"
    )
    op.drop_column("contract_weeks", "timeslot_id")
    op.drop_constraint(
        op.f("fk_contract_weeks_teacher_id_teachers"), "contract_weeks", "foreignkey"
    )
    op.drop_column("contract_weeks", "teacher_id")
    op.drop_constraint(op.f("ck_contract_weeks_contractweekstate"), "contract_weeks", "check")
    op.drop_column("contract_weeks", "state")
