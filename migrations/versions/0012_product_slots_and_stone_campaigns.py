"""energy-stone campaigns (TCH-7); product-directed slots (INT-1)

`stone_campaigns`: the marketing platform's stone price for one course type over
[starts_at, ends_at). At most one campaign per course type at any instant, held by an exclusion
constraint (`ex_stone_campaigns_overlap`) so that two concurrent creations cannot both win.
PostgreSQL's core GiST has no equality on text without the btree_gist extension (which the
embedded dev server does not ship), so the course type enters the constraint as a one-value
range of the range type `course_type_range`: two such ranges overlap exactly when equal.

Product-directed slots need no schema: `direction = 'product'` was already a direction, and
`direction_target` names the product line.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COURSE_TYPES = ("major", "special", "l7_major", "trial", "advanced", "open")


def upgrade() -> None:
    op.execute("CREATE TYPE course_type_range AS RANGE (subtype = text)")
    op.create_table(
        "stone_campaigns",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "course_type",
            sa.Enum(
                *COURSE_TYPES,
                name="coursetype",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("price", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("ended_early_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stone_campaigns")),
        sa.CheckConstraint("price > 0", name=op.f("ck_stone_campaigns_price_positive")),
        sa.CheckConstraint(
            "ends_at >= starts_at", name=op.f("ck_stone_campaigns_ends_after_start")
        ),
    )
    op.execute(
        "ALTER TABLE stone_campaigns ADD CONSTRAINT ex_stone_campaigns_overlap EXCLUDE USING gist "
        "(course_type_range(course_type, course_type, '[]') WITH &&, "
        "tstzrange(starts_at, ends_at) WITH &&)"
    )


def downgrade() -> None:
    op.drop_table("stone_campaigns")
    op.execute("DROP TYPE course_type_range")
