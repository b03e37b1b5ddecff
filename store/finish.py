"""Finish a class with a label (FM-3), undo it (FM-4), adjust the label (LP-4, CC-7, FM-5).

Each is one conditional UPDATE on the class row (or a row lock on it, then an UPDATE) in the
caller's transaction, audited there. A label decides the class's money (`domain/labels.py`):
`classes.refunded` says whether its payment is given back, and each change moves only the
difference through the ledger, once, under the class row's lock: a refund on entering a
refunding label, a debit again on leaving it (guarded by the balance: 409
insufficient_balance, or coupon_used, if the student spent it meanwhile). A teacher label
records a teacher penalty; leaving it, or undoing the finish, revokes it. Finishing an
over-booked class finishes its `overbooked_classes` row too; undoing puts that row back to
the state it had before.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor, Channel
from domain.errors import (
    ClassNotFinishable,
    ClassNotFinished,
    NotFound,
    TrialClassesOnly,
)
from domain.labels import PENALTIES, penalty, refunds
from domain.overbooking import OverbookState
from domain.words import ClassLabel, ClassState, CourseType
from store import audit, ledger, penalties
from store.classes import get_class
from store.models import Class, OverbookedClass

LABEL_PENALTIES = frozenset(PENALTIES.values())


async def finish(
    session: AsyncSession,
    *,
    class_id: int,
    label: ClassLabel,
    actor: Actor,
    now: datetime,
) -> Class:
    """FM-3: a booked class that has started becomes finished, with its label."""
    finished = await session.scalar(
        update(Class)
        .where(Class.id == class_id, Class.state == ClassState.booked, Class.start_at <= now)
        .values(state=ClassState.finished, label=label, refunded=refunds(label), updated_at=now)
        .returning(Class)
        .execution_options(populate_existing=True)
    )
    if finished is None:
        existing = await get_class(session, class_id)
        if existing.state is not ClassState.booked:
            raise ClassNotFinishable(
                "only a booked class can be finished",
                class_id=class_id,
                state=existing.state.value,
            )
        raise ClassNotFinishable(
            "the class has not started yet",
            class_id=class_id,
            start_at=existing.start_at.isoformat(),
        )
    await session.execute(
        update(OverbookedClass)
        .where(OverbookedClass.class_id == class_id)
        .values(state=OverbookState.finished, updated_at=now)
    )
    effects = await _apply(session, finished, False, None, label, None, actor, now)
    await audit.record(
        session, "class", [class_id], "finished", actor, now, label=label.value, **effects
    )
    return finished


async def undo_finish(
    session: AsyncSession, *, class_id: int, reason: str | None, actor: Actor, now: datetime
) -> Class:
    """FM-4: a finished class goes back to booked, its label cleared and what the label did
    to money and to the teacher taken back."""
    old = await _locked_finished(session, class_id)
    old_label, was_refunded = old.label, old.refunded
    reopened = await session.scalar(
        update(Class)
        .where(Class.id == class_id, Class.state == ClassState.finished)
        .values(state=ClassState.booked, label=None, refunded=False, updated_at=now)
        .returning(Class)
        .execution_options(populate_existing=True)
    )
    assert reopened is not None  # the row is locked and finished
    # An over-booked class's own row: back to where it stood before the finish.
    await session.execute(
        update(OverbookedClass)
        .where(
            OverbookedClass.class_id == class_id,
            OverbookedClass.state == OverbookState.finished,
        )
        .values(
            state=case(
                (OverbookedClass.matched_at.is_not(None), OverbookState.matched.value),
                (OverbookedClass.entered_at.is_not(None), OverbookState.waiting.value),
                else_=OverbookState.booked.value,
            ),
            updated_at=now,
        )
    )
    effects = await _apply(session, reopened, was_refunded, old_label, None, reason, actor, now)
    await audit.record(
        session,
        "class",
        [class_id],
        "finish_undone",
        actor,
        now,
        old_label=old_label.value if old_label else None,
        reason=reason,
        **effects,
    )
    return reopened


async def adjust_label(
    session: AsyncSession,
    *,
    class_id: int,
    label: ClassLabel,
    reason: str | None,
    actor: Actor,
    now: datetime,
) -> Class:
    """LP-4, FM-5: change a finished class's label; CC-7: CC does so for trial classes only."""
    old = await _locked_finished(session, class_id)
    if actor.channel is Channel.cc and old.course_type is not CourseType.trial:
        raise TrialClassesOnly(
            "CC adjusts the labels of trial classes only",
            class_id=class_id,
            course_type=old.course_type.value,
        )
    old_label, was_refunded = old.label, old.refunded
    relabelled = await session.scalar(
        update(Class)
        .where(
            Class.id == class_id,
            Class.state == ClassState.finished,
            Class.refunded == was_refunded,
        )
        .values(label=label, refunded=refunds(label), updated_at=now)
        .returning(Class)
        .execution_options(populate_existing=True)
    )
    assert relabelled is not None  # the row is locked and finished
    effects = await _apply(session, relabelled, was_refunded, old_label, label, reason, actor, now)
    await audit.record(
        session,
        "class",
        [class_id],
        "label_adjusted",
        actor,
        now,
        old_label=old_label.value if old_label else None,
        label=label.value,
        reason=reason,
        **effects,
    )
    return relabelled


async def _apply(
    session: AsyncSession,
    cls: Class,
    was_refunded: bool,
    old_label: ClassLabel | None,
    new_label: ClassLabel | None,
    reason: str | None,
    actor: Actor,
    now: datetime,
) -> dict[str, Any]:
    """Move the money and the penalty from what the old label did to what the new one does
    (None: not finished); the audit details saying what moved."""
    effects: dict[str, Any] = {}
    if cls.refunded and not was_refunded:
        await ledger.deposit(
            session,
            cls.student_id,
            ledger.charge_of(cls),
            "label_refund",
            actor,
            now,
            class_id=cls.id,
        )
        effects["money"] = "refunded"
    elif was_refunded and not cls.refunded:
        await ledger.withdraw(
            session,
            cls.student_id,
            ledger.charge_of(cls),
            "label_charge",
            actor,
            now,
            class_id=cls.id,
        )
        effects["money"] = "charged"
    old_penalty, new_penalty = penalty(old_label), penalty(new_label)
    if old_penalty is not new_penalty:
        if old_penalty is not None:
            revoked = await penalties.revoke(
                session, class_id=cls.id, kinds=LABEL_PENALTIES, actor=actor, now=now
            )
            if revoked:
                effects["penalty_revoked"] = old_penalty.value
        if new_penalty is not None and cls.teacher_id is not None:
            penalties.record(
                session,
                teacher_id=cls.teacher_id,
                class_id=cls.id,
                kind=new_penalty,
                reason=reason,
                actor=actor,
                now=now,
            )
            effects["penalty"] = new_penalty.value
    return effects


async def _locked_finished(session: AsyncSession, class_id: int) -> Class:
    """The class row, locked for this transaction, if it is finished."""
    row = await session.scalar(
        select(Class)
        .where(Class.id == class_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise NotFound("class", class_id)
    if row.state is not ClassState.finished:
        raise ClassNotFinished(
            "the class is not finished", class_id=class_id, state=row.state.value
        )
    return row
