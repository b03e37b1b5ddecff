"""Finish a class with a label (FM-3), undo it (FM-4), adjust the label (LP-4, CC-7, FM-5).

Each is one conditional UPDATE on the class row in the caller's transaction, audited there.
No money moves: a finished class keeps its payment, as a booked one does; reopening it leaves
the payment where it was.
"""

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor, Channel
from domain.errors import (
    ClassNotFinishable,
    ClassNotFinished,
    NotFound,
    TrialClassesOnly,
)
from domain.words import ClassLabel, ClassState, CourseType
from store import audit
from store.classes import get_class
from store.models import Class


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
        .values(state=ClassState.finished, label=label, updated_at=now)
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
    await audit.record(session, "class", [class_id], "finished", actor, now, label=label.value)
    return finished


async def undo_finish(
    session: AsyncSession, *, class_id: int, reason: str | None, actor: Actor, now: datetime
) -> Class:
    """FM-4: a finished class goes back to booked, its label cleared."""
    old = await _locked_finished(session, class_id)
    old_label = old.label
    reopened = await session.scalar(
        update(Class)
        .where(Class.id == class_id, Class.state == ClassState.finished)
        .values(state=ClassState.booked, label=None, updated_at=now)
        .returning(Class)
        .execution_options(populate_existing=True)
    )
    assert reopened is not None  # the row is locked and finished
    await audit.record(
        session,
        "class",
        [class_id],
        "finish_undone",
        actor,
        now,
        old_label=old_label.value if old_label else None,
        reason=reason,
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
    old_label = old.label
    relabelled = await session.scalar(
        update(Class)
        .where(Class.id == class_id, Class.state == ClassState.finished)
        .values(label=label, updated_at=now)
        .returning(Class)
        .execution_options(populate_existing=True)
    )
    assert relabelled is not None  # the row is locked and finished
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
    )
    return relabelled


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
