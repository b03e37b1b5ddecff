"""the event feed and webhook subscriptions

The audit trail becomes the feed's outbox. Each row gets the transaction that wrote it
(`xid`, a `xid8` defaulting to `pg_current_xact_id()`), the student and the teachers it
concerns (so a parent's or a teacher's feed reads an index), and its type
(`<entity>.<action>`, generated). A BEFORE INSERT trigger fills the student and teachers of a
row that does not name them, from the class, timeslot, request, hold, contract, open class or
enrolment it is about;
the one-statement bookings name them, since a class inserted by the same statement is not yet
visible to the trigger. A statement trigger on `ledger_entries` writes one `money.credited` or
`money.debited` row per entry, so every path that moves money is in the feed without a round
trip of its own. `webhook_subscriptions` holds the staff channels' webhooks.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE audit_events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id()")
    op.add_column("audit_events", sa.Column("student_id", sa.BigInteger(), nullable=True))
    op.add_column(
        "audit_events",
        sa.Column(
            "teacher_ids",
            postgresql.ARRAY(sa.BigInteger()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
    )
    op.add_column(
        "audit_events",
        sa.Column(
            "type",
            sa.String(49),
            sa.Computed("entity || '.' || action", persisted=True),
            nullable=False,
        ),
    )
    op.create_index("ix_audit_events_feed", "audit_events", ["xid", "id"])
    op.create_index("ix_audit_events_student_feed", "audit_events", ["student_id", "xid", "id"])
    op.create_index(
        "ix_audit_events_teacher_ids", "audit_events", ["teacher_ids"], postgresql_using="gin"
    )
    op.execute(
        """
        CREATE FUNCTION audit_events_concern() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.student_id IS NOT NULL OR NEW.teacher_ids <> '{}' THEN
                RETURN NEW;
            END IF;
            CASE NEW.entity
            WHEN 'class' THEN
                SELECT c.student_id,
                       array_remove(ARRAY[c.teacher_id,
                                          (NEW.details->>'old_teacher_id')::bigint], NULL)
                INTO NEW.student_id, NEW.teacher_ids
                FROM classes AS c WHERE c.id = NEW.entity_id;
            WHEN 'timeslot' THEN
                SELECT coalesce(c.student_id,
                                CASE WHEN t.direction = 'student'
                                     THEN t.direction_target::bigint END),
                       ARRAY[t.teacher_id]
                INTO NEW.student_id, NEW.teacher_ids
                FROM timeslots AS t
                LEFT JOIN classes AS c ON c.id = (NEW.details->>'class_id')::bigint
                WHERE t.id = NEW.entity_id;
            WHEN 'request' THEN
                SELECT r.student_id, ARRAY[r.teacher_id] INTO NEW.student_id, NEW.teacher_ids
                FROM class_requests AS r WHERE r.id = NEW.entity_id;
            WHEN 'hold' THEN
                SELECT h.student_id, ARRAY[h.teacher_id] INTO NEW.student_id, NEW.teacher_ids
                FROM teacher_cancels AS h WHERE h.class_id = NEW.entity_id;
            WHEN 'contract' THEN
                SELECT k.student_id, ARRAY[k.chinese_teacher_id, k.foreign_teacher_id]
                INTO NEW.student_id, NEW.teacher_ids
                FROM contracts AS k WHERE k.id = NEW.entity_id;
            WHEN 'open_class' THEN
                SELECT (NEW.details->>'student_id')::bigint, ARRAY[o.teacher_id]
                INTO NEW.student_id, NEW.teacher_ids
                FROM open_classes AS o WHERE o.id = NEW.entity_id;
            WHEN 'progress' THEN
                SELECT p.student_id INTO NEW.student_id
                FROM learning_progress AS p WHERE p.id = NEW.entity_id;
            ELSE
            END CASE;
            NEW.teacher_ids := coalesce(NEW.teacher_ids, '{}');
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_events_concern BEFORE INSERT ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION audit_events_concern()"
    )
    op.execute(
        """
        CREATE FUNCTION ledger_entries_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO audit_events (entity, entity_id, action, channel, actor_id,
                                      occurred_at, details, student_id)
            SELECT 'money', e.id, CASE WHEN e.delta < 0 THEN 'debited' ELSE 'credited' END,
                   e.channel, e.actor_id, e.occurred_at,
                   jsonb_strip_nulls(jsonb_build_object(
                       'asset', e.asset, 'key', e.key, 'delta', e.delta, 'reason', e.reason,
                       'class_id', e.class_id, 'request_id', e.request_id)),
                   e.student_id
            FROM new_entries AS e ORDER BY e.id;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER ledger_entries_audit AFTER INSERT ON ledger_entries "
        "REFERENCING NEW TABLE AS new_entries "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_audit()"
    )
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("channel", sa.String(24), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("types", postgresql.ARRAY(sa.String(49)), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("starts_after", sa.String(60), nullable=False),
        sa.Column("paused_reason", sa.String(500), nullable=True),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('active', 'paused', 'deleted')",
            name=op.f("ck_webhook_subscriptions_webhookstate"),
        ),
        sa.CheckConstraint("url ~ '^https?://'", name=op.f("ck_webhook_subscriptions_http_url")),
        sa.CheckConstraint("secret <> ''", name=op.f("ck_webhook_subscriptions_secret_set")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
    )
    op.create_index(op.f("ix_webhook_subscriptions_channel"), "webhook_subscriptions", ["channel"])


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_subscriptions_channel"), table_name="webhook_subscriptions")
    op.drop_table("webhook_subscriptions")
    op.execute("DROP TRIGGER ledger_entries_audit ON ledger_entries")
    op.execute("DROP FUNCTION ledger_entries_audit()")
    op.execute("DROP TRIGGER audit_events_concern ON audit_events")
    op.execute("DROP FUNCTION audit_events_concern()")
    op.drop_index("ix_audit_events_teacher_ids", table_name="audit_events")
    op.drop_index("ix_audit_events_student_feed", table_name="audit_events")
    op.drop_index("ix_audit_events_feed", table_name="audit_events")
    op.drop_column("audit_events", "type")
    op.drop_column("audit_events", "teacher_ids")
    op.drop_column("audit_events", "student_id")
    op.drop_column("audit_events", "xid")
