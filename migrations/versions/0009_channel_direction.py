"""channel-directed timeslots

A fake cancel (TMK-4, CC-4) keeps the cancelled class's slot for the channel that cancelled it
(`direction = 'channel'`, `direction_target` the channel, e.g. `tmk`) until its hold expires:
the direction's CHECK (`ck_timeslots_direction`) takes the new value.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = ("general", "student", "request", "contract", "product", "overbook_pool")
NEW = (*OLD, "channel")


def _check(values: tuple[str, ...]) -> str:
    return "direction IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_timeslots_direction"), "timeslots", type_="check")
    op.create_check_constraint(op.f("ck_timeslots_direction"), "timeslots", _check(NEW))


def downgrade() -> None:
    # A slot still held for a channel becomes general inventory, as its hold's end would.
    op.execute(
        "UPDATE timeslots SET direction = 'general', direction_target = NULL, expires_at = NULL "
        "WHERE direction = 'channel'"
    )
    op.drop_constraint(op.f("ck_timeslots_direction"), "timeslots", type_="check")
    op.create_check_constraint(op.f("ck_timeslots_direction"), "timeslots", _check(OLD))
