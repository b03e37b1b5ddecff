"""rules in PostgreSQL

Rules that concurrency could break, held by the database (issue 9):
- classes start on the :00/:30 grid to the second (`ck_classes_on_grid`), and the timeslots'
  grid check no longer rounds a fraction of a second onto the grid.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# On the 30-minute grid, to the second: the epoch as numeric keeps fractions of a second.
ON_GRID = "extract(epoch from start_at) % 1800 = 0"
OLD_ON_GRID = "extract(epoch from start_at)::bigint % 1800 = 0"


def upgrade() -> None:
    op.create_check_constraint(op.f("ck_classes_on_grid"), "classes", ON_GRID)
    op.drop_constraint(op.f("ck_timeslots_on_grid"), "timeslots", type_="check")
    op.create_check_constraint(op.f("ck_timeslots_on_grid"), "timeslots", ON_GRID)


def downgrade() -> None:
    op.drop_constraint(op.f("ck_timeslots_on_grid"), "timeslots", type_="check")
    op.create_check_constraint(op.f("ck_timeslots_on_grid"), "timeslots", OLD_ON_GRID)
    op.drop_constraint(op.f("ck_classes_on_grid"), "classes", type_="check")
