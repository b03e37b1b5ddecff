"""open classes and replays

An open class (公开课, CUR-2, CLS-1) is one teacher's timeslot sold to many students: a row in
`open_classes` holding the slot (its state `booked`), a capacity and the count of seats taken,
which a CHECK keeps between 0 and the capacity. Each seat is a class (`classes.open_class_id`)
with no timeslot of its own, so the index of one live class per student and start refuses a
second seat and a class elsewhere at that start. A seat is taken by a guarded UPDATE of
`seats_taken`; the trigger `open_class_seat_freed` gives it back whenever a seat's class is
cancelled, by whichever route. `open_class_replays` holds each student's access to a replay
(PAR-2), bought once per student and class.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAMP = sa.DateTime(timezone=True)


def _asset() -> sa.Enum:
    return sa.Enum(
        "credit",
        "coupon",
        "stones",
        name="asset",
        native_enum=False,
        create_constraint=True,
        length=24,
    )


def upgrade() -> None:
    op.create_table(
        "open_classes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("timeslot_id", sa.BigInteger(), nullable=False),
        sa.Column("teacher_id", sa.BigInteger(), nullable=False),
        sa.Column("start_at", STAMP, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("seats_taken", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("listed", sa.Boolean(), nullable=False),
        sa.Column("replay_asset", _asset(), nullable=True),
        sa.Column("replay_price", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("updated_at", STAMP, nullable=False),
        sa.CheckConstraint("capacity > 0", name=op.f("ck_open_classes_capacity_positive")),
        sa.CheckConstraint(
            "seats_taken >= 0 AND seats_taken <= capacity",
            name=op.f("ck_open_classes_seats_within_capacity"),
        ),
        sa.CheckConstraint(
            "(replay_asset IS NULL) = (replay_price IS NULL) AND replay_price > 0 "
            "AND replay_asset <> 'coupon'",
            name=op.f("ck_open_classes_replay_priced"),
        ),
        sa.ForeignKeyConstraint(
            ["timeslot_id"], ["timeslots.id"], name=op.f("fk_open_classes_timeslot_id_timeslots")
        ),
        sa.ForeignKeyConstraint(
            ["teacher_id"], ["teachers.id"], name=op.f("fk_open_classes_teacher_id_teachers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_open_classes")),
        sa.UniqueConstraint("timeslot_id", name=op.f("uq_open_classes_timeslot_id")),
    )
    op.create_index("ix_open_classes_start_at", "open_classes", ["start_at"])
    op.add_column("classes", sa.Column("open_class_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_classes_open_class_id_open_classes"),
        "classes",
        "open_classes",
        ["open_class_id"],
        ["id"],
    )
    op.create_index(
        "ix_classes_open_class_id",
        "classes",
        ["open_class_id"],
        postgresql_where=sa.text("open_class_id IS NOT NULL"),
    )
    op.execute(
        """
        CREATE FUNCTION open_class_seat_freed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE open_classes SET seats_taken = seats_taken - 1 WHERE id = NEW.open_class_id;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER open_class_seat_freed AFTER UPDATE OF state ON classes
        FOR EACH ROW
        WHEN (NEW.open_class_id IS NOT NULL AND OLD.state <> 'cancelled'
              AND NEW.state = 'cancelled')
        EXECUTE FUNCTION open_class_seat_freed()
        """
    )
    op.create_table(
        "open_class_replays",
        sa.Column("open_class_id", sa.BigInteger(), nullable=False),
        sa.Column("student_id", sa.BigInteger(), nullable=False),
        sa.Column("attended", sa.Boolean(), nullable=False),
        sa.Column("payment_asset", _asset(), nullable=True),
        sa.Column("payment_amount", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.CheckConstraint(
            "CASE WHEN attended THEN payment_asset IS NULL AND payment_amount = 0 "
            "ELSE payment_asset IS NOT NULL AND payment_amount > 0 END",
            name=op.f("ck_open_class_replays_free_only_for_attendees"),
        ),
        sa.ForeignKeyConstraint(
            ["open_class_id"],
            ["open_classes.id"],
            name=op.f("fk_open_class_replays_open_class_id_open_classes"),
        ),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["students.id"],
            name=op.f("fk_open_class_replays_student_id_students"),
        ),
        sa.PrimaryKeyConstraint("open_class_id", "student_id", name=op.f("pk_open_class_replays")),
    )
    op.create_index("ix_open_class_replays_student_id", "open_class_replays", ["student_id"])


def downgrade() -> None:
    op.drop_index("ix_open_class_replays_student_id", table_name="open_class_replays")
    op.drop_table("open_class_replays")
    op.execute("DROP TRIGGER open_class_seat_freed ON classes")
    op.execute("DROP FUNCTION open_class_seat_freed()")
    op.drop_index("ix_classes_open_class_id", table_name="classes")
    op.drop_constraint(op.f("fk_classes_open_class_id_open_classes"), "classes", type_="foreignkey")
    op.drop_column("classes", "open_class_id")
    op.drop_index("ix_open_classes_start_at", table_name="open_classes")
    op.drop_table("open_classes")
