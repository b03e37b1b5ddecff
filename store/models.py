"""SQLAlchemy 2.0 typed mappings. The constraints here, not Python, decide who gets a slot."""

from datetime import date, datetime, time
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    MetaData,
    SmallInteger,
    String,
    Text,
    cast,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, ExcludeConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

from domain.contract import ContractState, ContractWeekState, Role
from domain.events import WebhookState
from domain.learning_progress import ProgressState
from domain.overbooking import MatchSource, OverbookKind, OverbookState
from domain.weekly import Weekday
from domain.words import (
    Asset,
    ClassLabel,
    ClassState,
    CourseType,
    Direction,
    HoldState,
    PenaltyKind,
    RequestState,
    TeacherKind,
    TimeslotState,
)


def _enum(e: type[StrEnum]) -> Enum:
    """Stored as text with a CHECK: new values need no ALTER TYPE."""
    return Enum(
        e,
        native_enum=False,
        create_constraint=True,
        length=24,
        name=e.__name__.lower(),
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
    }


class Teacher(Base):
    __tablename__ = "teachers"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[TeacherKind] = mapped_column(_enum(TeacherKind))
    time_zone: Mapped[str] = mapped_column(String(64))
    course_types: Mapped[list[str]] = mapped_column(ARRAY(String(24)))
    created_at: Mapped[datetime]


class Student(Base):
    __tablename__ = "students"
    __table_args__ = (
        # One student per parent account of a channel (H5-10 registers by it).
        Index(
            "uq_students_external_account",
            "external_channel",
            "external_account_id",
            unique=True,
            postgresql_where=text("external_account_id IS NOT NULL"),
        ),
        CheckConstraint(
            "(external_channel IS NULL) = (external_account_id IS NULL)",
            name="external_account_whole",
        ),
        # "Is this teacher someone's exclusive teacher?", asked per slot in the priority window.
        Index(
            "ix_students_exclusive_teacher_id",
            "exclusive_teacher_id",
            postgresql_where=text("exclusive_teacher_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[int]
    time_zone: Mapped[str] = mapped_column(String(64))
    exclusive_teacher_id: Mapped[int | None] = mapped_column(ForeignKey("teachers.id"))
    # The parent's account in the channel that registered the student (H5-10), if any.
    external_channel: Mapped[str | None] = mapped_column(String(24))
    external_account_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]


class Timeslot(Base):
    """One teacher's 30-minute slot: the inventory."""

    __tablename__ = "timeslots"
    __table_args__ = (
        # On :00 or :30, to the second.
        CheckConstraint("extract(epoch from start_at) % 1800 = 0", name="on_grid"),
        # A slot held for a student (TCH-5) is held at most until it starts.
        CheckConstraint("expires_at IS NULL OR expires_at <= start_at", name="held_until_start"),
        # One live timeslot per teacher and start.
        Index(
            "uq_timeslots_live_teacher_start",
            "teacher_id",
            "start_at",
            unique=True,
            postgresql_where=text("state <> 'removed'"),
        ),
        Index("ix_timeslots_open_start", "start_at", postgresql_where=text("state = 'open'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    teacher_id: Mapped[int] = mapped_column(ForeignKey("teachers.id"))
    start_at: Mapped[datetime]
    state: Mapped[TimeslotState] = mapped_column(_enum(TimeslotState))
    direction: Mapped[Direction] = mapped_column(_enum(Direction))
    # Whom the direction points at: a student id, a request id, a contract id, a product…
    direction_target: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime | None]
    # The flow that made this slot (its workflow id), e.g. "teacher-cancel-42".
    origin: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Class(Base):
    """A booked lesson. Over-booked classes have no teacher or timeslot until matched."""

    __tablename__ = "classes"
    __table_args__ = (
        # One live class per timeslot, and one per student and start.
        Index(
            "uq_classes_live_timeslot",
            "timeslot_id",
            unique=True,
            postgresql_where=text("state <> 'cancelled' AND timeslot_id IS NOT NULL"),
        ),
        Index(
            "uq_classes_live_student_start",
            "student_id",
            "start_at",
            unique=True,
            postgresql_where=text("state <> 'cancelled'"),
        ),
        # A teacher's live classes in a week (auto-booking's any-teacher spread).
        Index(
            "ix_classes_live_teacher_start",
            "teacher_id",
            "start_at",
            postgresql_where=text("state <> 'cancelled'"),
        ),
        Index(
            "ix_classes_open_class_id",
            "open_class_id",
            postgresql_where=text("open_class_id IS NOT NULL"),
        ),
        CheckConstraint("payment_amount > 0", name="payment_positive"),
        # On :00 or :30, to the second, like its timeslot (over-booked classes have none).
        CheckConstraint("extract(epoch from start_at) % 1800 = 0", name="on_grid"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"))
    teacher_id: Mapped[int | None] = mapped_column(ForeignKey("teachers.id"))
    timeslot_id: Mapped[int | None] = mapped_column(ForeignKey("timeslots.id"))
    start_at: Mapped[datetime]
    course_type: Mapped[CourseType] = mapped_column(_enum(CourseType))
    state: Mapped[ClassState] = mapped_column(_enum(ClassState))
    label: Mapped[ClassLabel | None] = mapped_column(_enum(ClassLabel))
    lesson: Mapped[str | None] = mapped_column(String(200))
    payment_asset: Mapped[Asset] = mapped_column(_enum(Asset))
    payment_key: Mapped[str] = mapped_column(String(64))
    payment_amount: Mapped[int]
    refunded: Mapped[bool] = mapped_column(server_default=text("false"))
    # A seat in an open class (CUR-2, CLS-1): no timeslot of its own, the open class holds it.
    open_class_id: Mapped[int | None] = mapped_column(ForeignKey("open_classes.id"))
    channel: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ClassRequest(Base):
    """A student's ask for a time the teacher has not opened (求课); its payment is held."""

    __tablename__ = "class_requests"
    __table_args__ = (
        Index("ix_class_requests_teacher_state", "teacher_id", "state"),
        Index("ix_class_requests_student_state", "student_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"))
    teacher_id: Mapped[int] = mapped_column(ForeignKey("teachers.id"))
    start_at: Mapped[datetime]
    course_type: Mapped[CourseType] = mapped_column(_enum(CourseType))
    state: Mapped[RequestState] = mapped_column(_enum(RequestState))
    payment_asset: Mapped[Asset] = mapped_column(_enum(Asset))
    payment_key: Mapped[str] = mapped_column(String(64))
    payment_amount: Mapped[int]
    deadline: Mapped[datetime]
    keep_slot: Mapped[bool | None]
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))
    reason: Mapped[str | None] = mapped_column(String(500))
    channel: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TeacherCancel(Base):
    """A teacher's cancellation of a booked class (kept for penalties) and its hold."""

    __tablename__ = "teacher_cancels"
    __table_args__ = (CheckConstraint("expires_at > created_at", name="expires_after_created"),)

    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"), primary_key=True)
    teacher_id: Mapped[int] = mapped_column(ForeignKey("teachers.id"), index=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), index=True)
    reason: Mapped[str | None] = mapped_column(String(500))
    state: Mapped[HoldState] = mapped_column(_enum(HoldState))
    expires_at: Mapped[datetime]
    booked_class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))
    channel: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TeacherPenalty(Base):
    """A teacher's penalty: a teacher cancel (TCH-5) or a penalising label. Revoked (kept, with
    who and when) when the label changes away or the finish is undone."""

    __tablename__ = "teacher_penalties"
    __table_args__ = (
        Index("ix_teacher_penalties_teacher_id", "teacher_id", "id"),
        # At most one standing penalty per class and teacher.
        Index(
            "uq_teacher_penalties_standing_class",
            "class_id",
            "teacher_id",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    teacher_id: Mapped[int] = mapped_column(ForeignKey("teachers.id"))
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"))
    kind: Mapped[PenaltyKind] = mapped_column(_enum(PenaltyKind))
    reason: Mapped[str | None] = mapped_column(String(500))
    channel: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_channel: Mapped[str | None] = mapped_column(String(24))
    revoked_actor_id: Mapped[str | None] = mapped_column(String(64))


class Coupon(Base):
    """A single-use voucher; whether it is still unused is its account balance (0 or 1)."""

    __tablename__ = "coupons"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), index=True)
    course_type: Mapped[CourseType] = mapped_column(_enum(CourseType))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]


class Account(Base):
    """A student's balance of one asset: the running sum of its ledger entries, never negative.

    key: the course type for credits, the coupon id for a coupon, '' for energy stones.
    """

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("balance >= 0", name="balance_not_negative"),
        CheckConstraint("asset <> 'coupon' OR balance <= 1", name="coupon_single_use"),
    )

    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), primary_key=True)
    asset: Mapped[Asset] = mapped_column(_enum(Asset), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    balance: Mapped[int]


class LedgerEntry(Base):
    """Append-only (a trigger refuses UPDATE and DELETE): money moves only by new entries."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        # A student's free trial credit (H5-10) is granted once.
        Index(
            "uq_ledger_entries_one_trial_grant",
            "student_id",
            unique=True,
            postgresql_where=text("reason = 'trial_grant'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), index=True)
    asset: Mapped[Asset] = mapped_column(_enum(Asset))
    key: Mapped[str] = mapped_column(String(64))
    delta: Mapped[int]
    reason: Mapped[str] = mapped_column(String(32))
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"), index=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("class_requests.id"), index=True)
    channel: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime]


class StoneCampaign(Base):
    """The marketing platform's energy-stone price of one course type over [starts_at, ends_at)
    (TCH-7). Ended early: ends_at moved to the time it ended (never into the past), and
    ended_early_at set. `ex_stone_campaigns_overlap` (migration 0012) keeps at most one campaign
    per course type at any instant."""

    __tablename__ = "stone_campaigns"
    __table_args__ = (
        CheckConstraint("price > 0", name="price_positive"),
        CheckConstraint("ends_at >= starts_at", name="ends_after_start"),
        ExcludeConstraint(
            (text("course_type_range(course_type, course_type, '[]')"), "&&"),
            (text("tstzrange(starts_at, ends_at)"), "&&"),
            name="ex_stone_campaigns_overlap",
            using="gist",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    course_type: Mapped[CourseType] = mapped_column(_enum(CourseType))
    price: Mapped[int]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    name: Mapped[str | None] = mapped_column(String(200))
    ended_early_at: Mapped[datetime | None]
    channel: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class Xid8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id; read as text (asyncpg has no codec for it)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"

    def column_expression(self, colexpr: Any) -> Any:
        return cast(colexpr, Text)

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        return lambda value: None if value is None else int(value)


class AuditEvent(Base):
    """Who changed what, from which channel, when, and how: the audit trail and the event
    feed's outbox. `xid` (the writing transaction) and `id` order the feed (docs/events.md);
    a trigger fills `student_id` and `teacher_ids` from the row's entity when not given."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_entity", "entity", "entity_id"),
        Index("ix_audit_events_feed", "xid", "id"),
        Index("ix_audit_events_student_feed", "student_id", "xid", "id"),
        Index("ix_audit_events_teacher_ids", "teacher_ids", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    xid: Mapped[int] = mapped_column(Xid8, server_default=text("pg_current_xact_id()"))
    entity: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(49), Computed("entity || '.' || action"))
    student_id: Mapped[int | None] = mapped_column(BigInteger)
    teacher_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default=text("'{}'"))
    channel: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    details: Mapped[dict[str, Any]]


class OperationKey(Base):
    """A request or activity already done: its key, a hash of its input and its result.

    Written in the same transaction as the work, so a retry returns the first result.
    scope: "channel:actor" for an HTTP Idempotency-Key, "activity" for a workflow step.
    Kept for a retention (7 days), then deleted by the Schedule `operation-key-cleanup`.
    """

    __tablename__ = "operation_keys"
    __table_args__ = (Index("ix_operation_keys_created_at", "created_at"),)

    scope: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    # The id a flow call reserved for the flow it starts, so that a retry asks the same flow.
    reserved_id: Mapped[int | None] = mapped_column(BigInteger)


class OverbookedClass(Base):
    """A class booked with no teacher (超约), followed by its flow overbook-{class_id}.

    Its row is the lock that serializes the student's entries, the flow's retries and its
    give-up; the class row carries the teacher and the timeslot once matched.
    """

    __tablename__ = "overbooked_classes"
    __table_args__ = (Index("ix_overbooked_classes_start_state", "start_at", "state"),)

    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"), primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), index=True)
    kind: Mapped[OverbookKind] = mapped_column(_enum(OverbookKind))
    course_type: Mapped[CourseType] = mapped_column(_enum(CourseType))
    start_at: Mapped[datetime]
    state: Mapped[OverbookState] = mapped_column(_enum(OverbookState))
    entered_at: Mapped[datetime | None]
    matched_at: Mapped[datetime | None]
    matched_from: Mapped[MatchSource | None] = mapped_column(_enum(MatchSource))
    wait_until: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TeacherSwap(Base):
    """An in-class teacher change (SD-5d, FM-7): who left with which label, who took over."""

    __tablename__ = "teacher_swaps"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"), index=True)
    old_teacher_id: Mapped[int] = mapped_column(ForeignKey("teachers.id"))
    old_timeslot_id: Mapped[int] = mapped_column(ForeignKey("timeslots.id"))
    new_teacher_id: Mapped[int] = mapped_column(ForeignKey("teachers.id"))
    new_timeslot_id: Mapped[int] = mapped_column(ForeignKey("timeslots.id"))
    new_from: Mapped[MatchSource] = mapped_column(_enum(MatchSource))
    old_teacher_label: Mapped[ClassLabel] = mapped_column(_enum(ClassLabel))
    reason: Mapped[str | None] = mapped_column(String(500))
    channel: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime]


class Contract(Base):
    """A dual-excellence contract (双优合约): one student, a Chinese and a foreign teacher, each
    at a fixed weekly local time, from first_week for `weeks` weeks (None: open-ended)."""

    __tablename__ = "contracts"
    __table_args__ = (
        CheckConstraint("weeks IS NULL OR weeks > 0", name="weeks_positive"),
        CheckConstraint("chinese_teacher_id <> foreign_teacher_id", name="two_teachers"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), index=True)
    chinese_teacher_id: Mapped[int] = mapped_column(ForeignKey("teachers.id"), index=True)
    chinese_weekday: Mapped[Weekday] = mapped_column(String(16))
    chinese_start: Mapped[time]
    foreign_teacher_id: Mapped[int] = mapped_column(ForeignKey("teachers.id"), index=True)
    foreign_weekday: Mapped[Weekday] = mapped_column(String(16))
    foreign_start: Mapped[time]
    first_week: Mapped[date]
    weeks: Mapped[int | None]
    course_type: Mapped[CourseType] = mapped_column(_enum(CourseType))
    state: Mapped[ContractState] = mapped_column(_enum(ContractState))
    chinese_agreed: Mapped[bool | None]
    foreign_agreed: Mapped[bool | None]
    reason: Mapped[str | None] = mapped_column(String(500))
    channel: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ContractWeek(Base):
    """One teacher's class of one contract week: offered and awaiting the teacher's answer,
    booked (its class), or why not (declined, expired, unbooked, withdrawn)."""

    __tablename__ = "contract_weeks"
    __table_args__ = (
        CheckConstraint("state <> 'booked' OR class_id IS NOT NULL", name="booked_has_class"),
        CheckConstraint(
            "state <> 'awaiting' OR (timeslot_id IS NOT NULL AND answer_by IS NOT NULL)",
            name="awaiting_has_slot",
        ),
        # The teacher portal's list of weeks awaiting a teacher's answer.
        Index(
            "ix_contract_weeks_awaiting",
            "teacher_id",
            "answer_by",
            postgresql_where=text("state = 'awaiting'"),
        ),
    )

    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"), primary_key=True)
    week: Mapped[date] = mapped_column(primary_key=True)
    role: Mapped[Role] = mapped_column(_enum(Role), primary_key=True)
    teacher_id: Mapped[int] = mapped_column(ForeignKey("teachers.id"))
    start_at: Mapped[datetime]
    state: Mapped[ContractWeekState] = mapped_column(_enum(ContractWeekState))
    timeslot_id: Mapped[int | None] = mapped_column(ForeignKey("timeslots.id"))
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))
    reason: Mapped[str | None] = mapped_column(String(500))
    answer_by: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class BookingRule(Base):
    """A student's weekly booking rule. kind 'auto': auto-booking (自动约, LP-1), teachers in
    order of preference; kind 'exclusive': the weekly pattern with the exclusive teacher (SD-1)."""

    __tablename__ = "booking_rules"

    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    teacher_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    any_teacher: Mapped[bool]
    course_type: Mapped[CourseType] = mapped_column(_enum(CourseType))
    active: Mapped[bool]
    channel: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class BookingWish(Base):
    """One wished weekly time of a rule (local weekday and start); position 1 is wished most."""

    __tablename__ = "booking_wishes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["student_id", "kind"],
            ["booking_rules.student_id", "booking_rules.kind"],
            ondelete="CASCADE",
        ),
    )

    student_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    position: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    weekday: Mapped[int] = mapped_column(SmallInteger)  # 0 = Monday
    start_time: Mapped[time]


class BookingRun(Base):
    """One run of weekly booking (auto, exclusive, exclusive_l7) for one week, for every
    student with a rule or for one; its counters are the run's progress."""

    __tablename__ = "booking_runs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    week: Mapped[date]
    student_id: Mapped[int | None] = mapped_column(ForeignKey("students.id"))
    state: Mapped[str] = mapped_column(String(16))
    students: Mapped[int]
    rounds: Mapped[int]
    booked: Mapped[int]
    failed: Mapped[int]
    flow_id: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class BookingRunStudent(Base):
    """The run's students in their fair order (see store.auto_booking), fixed at its start."""

    __tablename__ = "booking_run_students"

    run_id: Mapped[int] = mapped_column(ForeignKey("booking_runs.id"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[int] = mapped_column(BigInteger)


class BookingResult(Base):
    """Per student and wish: the class booked, or the reason it was not."""

    __tablename__ = "booking_results"

    run_id: Mapped[int] = mapped_column(ForeignKey("booking_runs.id"), primary_key=True)
    student_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    position: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    start_at: Mapped[datetime]
    teacher_id: Mapped[int | None] = mapped_column(BigInteger)
    class_id: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(64))


class LearningProgress(Base):
    """A student's enrolment in a course (CUR-1, TMK-7, CC-8): the next lesson to book, out of
    `lessons` (None: open-ended); completed once the last lesson is booked."""

    __tablename__ = "learning_progress"
    __table_args__ = (
        Index("uq_learning_progress_student_course", "student_id", "course", unique=True),
        CheckConstraint("next_lesson >= 1", name="next_lesson_positive"),
        CheckConstraint("lessons IS NULL OR lessons >= 1", name="lessons_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"))
    course: Mapped[str] = mapped_column(String(32))
    next_lesson: Mapped[int]
    lessons: Mapped[int | None]
    state: Mapped[ProgressState] = mapped_column(_enum(ProgressState))
    channel: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class OpenClass(Base):
    """An open class (公开课, CUR-2, CLS-1): one teacher's timeslot (held, state `booked`) sold
    seat by seat up to its capacity.

    A seat is a class with `open_class_id`; `seats_taken` counts the live ones. Booking takes a
    seat by a guarded UPDATE (`seats_taken < capacity`), the CHECK below being the last word;
    the trigger `open_class_seat_freed` (migration 0011) gives a seat back when its class is
    cancelled, by any route.
    """

    __tablename__ = "open_classes"
    __table_args__ = (
        CheckConstraint("capacity > 0", name="capacity_positive"),
        CheckConstraint(
            "seats_taken >= 0 AND seats_taken <= capacity", name="seats_within_capacity"
        ),
        CheckConstraint(
            "(replay_asset IS NULL) = (replay_price IS NULL) AND replay_price > 0 "
            "AND replay_asset <> 'coupon'",
            name="replay_priced",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    timeslot_id: Mapped[int] = mapped_column(ForeignKey("timeslots.id"), unique=True)
    teacher_id: Mapped[int] = mapped_column(ForeignKey("teachers.id"))
    start_at: Mapped[datetime] = mapped_column(index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(4000))
    capacity: Mapped[int]
    seats_taken: Mapped[int] = mapped_column(server_default=text("0"))
    listed: Mapped[bool]
    # The replay's price (PAR-2), set by curriculum or classroom: credits of course type
    # `open`, or energy stones. None: not for sale yet.
    replay_asset: Mapped[Asset | None] = mapped_column(_enum(Asset))
    replay_price: Mapped[int | None]
    channel: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class OpenClassReplay(Base):
    """A student's access to an open class's replay: bought, or free for an attendee (a seat
    not cancelled). One per student and class: the primary key refuses a second."""

    __tablename__ = "open_class_replays"
    __table_args__ = (
        CheckConstraint(
            "CASE WHEN attended THEN payment_asset IS NULL AND payment_amount = 0 "
            "ELSE payment_asset IS NOT NULL AND payment_amount > 0 END",
            name="free_only_for_attendees",
        ),
    )

    open_class_id: Mapped[int] = mapped_column(ForeignKey("open_classes.id"), primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), primary_key=True, index=True)
    attended: Mapped[bool]
    payment_asset: Mapped[Asset | None] = mapped_column(_enum(Asset))
    payment_amount: Mapped[int]
    channel: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class WebhookSubscription(Base):
    """A staff channel's webhook: where its events go, signed with its secret; delivered by
    the flow webhook-{id} (workflows/webhook_delivery.py)."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (
        CheckConstraint("url ~ '^https?://'", name="http_url"),
        CheckConstraint("secret <> ''", name="secret_set"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    channel: Mapped[str] = mapped_column(String(24), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    types: Mapped[list[str]] = mapped_column(ARRAY(String(49)))
    state: Mapped[WebhookState] = mapped_column(_enum(WebhookState))
    # The feed's cursor when it was created: it is sent the events after it.
    starts_after: Mapped[str] = mapped_column(String(60))
    paused_reason: Mapped[str | None] = mapped_column(String(500))
    actor_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
