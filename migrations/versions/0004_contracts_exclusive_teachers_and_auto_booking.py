"""contracts, exclusive teachers and auto-booking

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=24)


COURSE_TYPES = ("major", "special", "l7_major", "trial", "advanced", "open")
STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "contracts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("student_id", sa.BigInteger(), nullable=False),
        sa.Column("chinese_teacher_id", sa.BigInteger(), nullable=False),
        sa.Column("chinese_weekday", sa.String(length=16), nullable=False),
        sa.Column("chinese_start", sa.Time(), nullable=False),
        sa.Column("foreign_teacher_id", sa.BigInteger(), nullable=False),
        sa.Column("foreign_weekday", sa.String(length=16), nullable=False),
        sa.Column("foreign_start", sa.Time(), nullable=False),
        sa.Column("first_week", sa.Date(), nullable=False),
        sa.Column("weeks", sa.Integer(), nullable=True),
        sa.Column("course_type", _enum("coursetype", *COURSE_TYPES), nullable=False),
        sa.Column(
            "state",
            _enum(
                "contractstate",
                "proposed",
                "active",
                "declined",
                "expired",
                "terminated",
                "finished",
            ),
            nullable=False,
        ),
        sa.Column("chinese_agreed", sa.Boolean(), nullable=True),
        sa.Column("foreign_agreed", sa.Boolean(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("updated_at", STAMP, nullable=False),
        sa.CheckConstraint("weeks IS NULL OR weeks > 0", name=op.f("ck_contracts_weeks_positive")),
        sa.CheckConstraint(
            "chinese_teacher_id <> foreign_teacher_id", name=op.f("ck_contracts_two_teachers")
        ),
        sa.ForeignKeyConstraint(
            ["student_id"], ["students.id"], name=op.f("fk_contracts_student_id_students")
        ),
        sa.ForeignKeyConstraint(
            ["chinese_teacher_id"],
            ["teachers.id"],
            name=op.f("fk_contracts_chinese_teacher_id_teachers"),
        ),
        sa.ForeignKeyConstraint(
            ["foreign_teacher_id"],
            ["teachers.id"],
            name=op.f("fk_contracts_foreign_teacher_id_teachers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contracts")),
    )
    for column in ("student_id", "chinese_teacher_id", "foreign_teacher_id"):
        op.create_index(op.f(f"ix_contracts_{column}"), "contracts", [column], unique=False)

    op.create_table(
        "contract_weeks",
        sa.Column("contract_id", sa.BigInteger(), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("role", _enum("role", "chinese", "foreign"), nullable=False),
        sa.Column("start_at", STAMP, nullable=False),
        sa.Column("class_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("created_at", STAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_contract_weeks_contract_id_contracts"),
        ),
        sa.ForeignKeyConstraint(
            ["class_id"], ["classes.id"], name=op.f("fk_contract_weeks_class_id_classes")
        ),
        sa.PrimaryKeyConstraint("contract_id", "week", "role", name=op.f("pk_contract_weeks")),
    )

    op.create_table(
        "booking_rules",
        sa.Column("student_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("teacher_ids", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column("any_teacher", sa.Boolean(), nullable=False),
        sa.Column("course_type", _enum("coursetype", *COURSE_TYPES), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("updated_at", STAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["student_id"], ["students.id"], name=op.f("fk_booking_rules_student_id_students")
        ),
        sa.PrimaryKeyConstraint("student_id", "kind", name=op.f("pk_booking_rules")),
    )
    op.create_table(
        "booking_wishes",
        sa.Column("student_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=False),
        sa.Column("start_time", sa.Time(), nullable=False),
        sa.ForeignKeyConstraint(
            ["student_id", "kind"],
            ["booking_rules.student_id", "booking_rules.kind"],
            name=op.f("fk_booking_wishes_student_id_booking_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("student_id", "kind", "position", name=op.f("pk_booking_wishes")),
    )
    op.create_table(
        "booking_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("student_id", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("students", sa.Integer(), nullable=False),
        sa.Column("rounds", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("flow_id", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", STAMP, nullable=False),
        sa.Column("finished_at", STAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["student_id"], ["students.id"], name=op.f("fk_booking_runs_student_id_students")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_runs")),
    )
    op.create_table(
        "booking_run_students",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("student_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["booking_runs.id"],
            name=op.f("fk_booking_run_students_run_id_booking_runs"),
        ),
        sa.PrimaryKeyConstraint("run_id", "position", name=op.f("pk_booking_run_students")),
    )
    op.create_table(
        "booking_results",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("student_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("start_at", STAMP, nullable=False),
        sa.Column("teacher_id", sa.BigInteger(), nullable=True),
        sa.Column("class_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["booking_runs.id"], name=op.f("fk_booking_results_run_id_booking_runs")
        ),
        sa.PrimaryKeyConstraint(
            "run_id", "student_id", "position", name=op.f("pk_booking_results")
        ),
    )


def downgrade() -> None:
    for table in (
        "booking_results",
        "booking_run_students",
        "booking_runs",
        "booking_wishes",
        "booking_rules",
        "contract_weeks",
    ):
        op.drop_table(table)
    for column in ("student_id", "chinese_teacher_id", "foreign_teacher_id"):
        op.drop_index(op.f(f"ix_contracts_{column}"), table_name="contracts")
    op.drop_table("contracts")
