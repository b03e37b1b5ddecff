"""Teacher penalties (TCH-5, penalising labels): recorded and revoked in the caller's
transaction. A revoked penalty keeps its row, with who revoked it and when."""

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.channels import Actor
from domain.words import PenaltyKind
from store.models import TeacherPenalty
from store.people import get_teacher


def record(
    session: AsyncSession,
    *,
    teacher_id: int,
    class_id: int,
    kind: PenaltyKind,
    reason: str | None,
    actor: Actor,
    now: datetime,
) -> None:
    session.add(
        TeacherPenalty(
            teacher_id=teacher_id,
            class_id=class_id,
            kind=kind,
            reason=reason,
            channel=actor.channel.value,
            actor_id=actor.id,
            created_at=now,
        )
    )


async def revoke(
    session: AsyncSession,
    *,
    class_id: int,
    kinds: frozenset[PenaltyKind],
    actor: Actor,
    now: datetime,
) -> list[int]:
    """Revoke the class's standing penalties of these kinds; their ids."""
    revoked = await session.scalars(
        update(TeacherPenalty)
        .where(
            TeacherPenalty.class_id == class_id,
            TeacherPenalty.kind.in_(kinds),
            TeacherPenalty.revoked_at.is_(None),
        )
        .values(revoked_at=now, revoked_channel=actor.channel.value, revoked_actor_id=actor.id)
        .returning(TeacherPenalty.id)
    )
    return list(revoked)


async def of_teacher(session: AsyncSession, teacher_id: int) -> list[TeacherPenalty]:
    """A teacher's penalties, standing and revoked, oldest first."""
    await get_teacher(session, teacher_id)
    rows = await session.scalars(
        select(TeacherPenalty)
        .where(TeacherPenalty.teacher_id == teacher_id)
        .order_by(TeacherPenalty.id)
    )
    return list(rows)
