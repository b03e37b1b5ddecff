"""Store activities act once per step (ARCHITECTURE rule 4): a retry of the same activity in
the same workflow run gets the first result back; another step acts again. Run with Temporal's
ActivityEnvironment, whose `info` names the workflow run and activity the key is made of.

covers: TCH-3, TCH-4, LP-6
"""

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import StoreActivities
from activities.class_request import ClassRequestActivities
from domain.channels import Actor, Channel
from domain.class_request import ClassRequestInput, CreateRequest, ReleaseRequest, RequestView
from domain.payment import Payment
from domain.rules import BookingRules
from domain.words import Asset, CourseType, RequestState, TeacherKind
from store import class_requests, ledger, people
from store.db import Sessions
from store.models import ClassRequest, LedgerEntry, OperationKey
from tests.conftest import T0

RULES = BookingRules()
LP = Actor(channel=Channel.lp, id="lp-1")
CREDITS = 5


def step_env(
    activity_id: str, *, run_id: str = "run-1", workflow_id: str = "flow-1", attempt: int = 1
) -> ActivityEnvironment:
    """An activity context as the worker gives it to one attempt of one step."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        workflow_id=workflow_id,
        workflow_run_id=run_id,
        activity_id=activity_id,
        attempt=attempt,
    )
    return env


@dataclasses.dataclass
class Seeded:
    student_id: int
    teacher_id: int


@pytest.fixture
async def seeded(db: Sessions) -> Seeded:
    async with db.begin() as session:
        teacher = await people.register_teacher(
            session,
            name="T",
            kind=TeacherKind.foreign,
            time_zone="UTC",
            course_types=[CourseType.major],
            now=T0,
        )
        student = await people.register_student(
            session, name="S", level=1, time_zone="UTC", exclusive_teacher_id=None, now=T0
        )
        await ledger.grant(session, student.id, Asset.credit, CREDITS, CourseType.major, LP, T0)
        return Seeded(student_id=student.id, teacher_id=teacher.id)


async def new_request(db: Sessions, seeded: Seeded) -> CreateRequest:
    async with db.begin() as session:
        request_id = await class_requests.next_request_id(session)
    request = ClassRequestInput(
        request_id=request_id,
        student_id=seeded.student_id,
        teacher_id=seeded.teacher_id,
        start_at=T0 + timedelta(days=2),
        course_type=CourseType.major,
        payment=Payment(),
        actor=LP,
    )
    return CreateRequest(request=request, now=T0)


async def counts(db: Sessions, student_id: int) -> dict[str, Any]:
    """Requests, ledger entries by reason, and the major credit balance by the ledger."""
    async with db() as session:
        requests = await session.scalar(select(func.count()).select_from(ClassRequest))
        reasons = dict(
            (
                await session.execute(
                    select(LedgerEntry.reason, func.count())
                    .where(LedgerEntry.student_id == student_id)
                    .group_by(LedgerEntry.reason)
                )
            ).all()
        )
        credits = await session.scalar(
            select(func.sum(LedgerEntry.delta)).where(
                LedgerEntry.student_id == student_id, LedgerEntry.asset == Asset.credit
            )
        )
        keys = await session.scalar(
            select(func.count()).select_from(OperationKey).where(OperationKey.scope == "activity")
        )
    return {"requests": requests, "entries": reasons, "credits": credits, "keys": keys}


@pytest.mark.parametrize(
    ("attempt", "later"),
    [
        pytest.param(2, timedelta(0), id="activity retried"),
        pytest.param(1, timedelta(seconds=12), id="local activity in a new workflow task"),
    ],
)
async def test_a_retried_hold_returns_the_first_result_and_holds_once(
    db: Sessions, seeded: Seeded, attempt: int, later: timedelta
) -> None:
    """covers: LP-6. The worker died after the hold committed. The retry is attempt 2 of the
    same step; or, the hold being a local activity, the next try of the workflow task, which
    builds the step again with its own, later `workflow.now()`. Either way it gets the same
    request back, and the credit is held once (a refusal here would leave it held with no flow
    to give it back)."""
    acts = ClassRequestActivities(db, RULES)
    step = await new_request(db, seeded)
    first = await step_env("1", attempt=1).run(acts.hold_request_payment, step)
    retried = step.model_copy(update={"now": step.now + later})
    again = await step_env("1", attempt=attempt).run(acts.hold_request_payment, retried)

    assert again == first and first.state is RequestState.pending
    assert await counts(db, seeded.student_id) == {
        "requests": 1,
        "entries": {"grant": 1, "request_hold": 1},
        "credits": CREDITS - 1,
        "keys": 1,
    }


async def test_a_retried_release_gives_the_hold_back_once(db: Sessions, seeded: Seeded) -> None:
    """covers: TCH-4. The rejection's release retried: one refund, the same answer."""
    acts = ClassRequestActivities(db, RULES)
    held = await step_env("1").run(acts.hold_request_payment, await new_request(db, seeded))
    release = ReleaseRequest(
        request_id=held.id, state=RequestState.rejected, reason="busy", actor=LP, now=T0
    )
    first = await step_env("2").run(acts.release_request_hold, release)
    again = await step_env("2", attempt=3).run(acts.release_request_hold, release)

    assert again == first and first.state is RequestState.rejected
    after = await counts(db, seeded.student_id)
    assert after["credits"] == CREDITS
    assert sum(after["entries"].values()) == 3  # grant, hold, one release


@pytest.mark.parametrize(
    "other",
    [{"activity_id": "3"}, {"activity_id": "2", "run_id": "run-2"}],
    ids=["another activity id", "another run of the flow"],
)
async def test_another_step_with_the_same_input_acts_again(
    db: Sessions, seeded: Seeded, other: dict[str, str]
) -> None:
    """covers: TCH-4. The key is the step's place in its run, not its input: a second release
    of the same request at another place is not a replay. It runs, and the store refuses it
    (the request is no longer pending); nothing more is refunded."""
    acts = ClassRequestActivities(db, RULES)
    held = await step_env("1").run(acts.hold_request_payment, await new_request(db, seeded))
    release = ReleaseRequest(
        request_id=held.id, state=RequestState.withdrawn, reason=None, actor=LP, now=T0
    )
    await step_env("2").run(acts.release_request_hold, release)
    before = await counts(db, seeded.student_id)

    with pytest.raises(ApplicationError) as refused:
        await step_env(**other).run(acts.release_request_hold, release)
    assert (refused.value.type, refused.value.non_retryable) == ("request_closed", True)
    assert await counts(db, seeded.student_id) == before


class Stones(BaseModel):
    student_id: int
    amount: int
    now: datetime


class Balance(BaseModel):
    stones: int


class GrantActivities(StoreActivities):
    """A step that may rightly run twice (a grant), to show when `once` lets it."""

    @activity.defn(name="grant_stones")
    async def grant_stones(self, step: Stones) -> Balance:
        async def op(session: AsyncSession) -> Balance:
            await ledger.grant(
                session, step.student_id, Asset.stones, step.amount, None, LP, step.now
            )
            return Balance(
                stones=(await ledger.balances(session, step.student_id, step.now)).stones
            )

        return await self.once(step, step.now, Balance, op)


@pytest.mark.parametrize(
    ("second", "acts_again"),
    [
        ({"activity_id": "1", "attempt": 2}, False),
        ({"activity_id": "2"}, True),
        ({"activity_id": "1", "run_id": "run-2"}, True),
        ({"activity_id": "1", "workflow_id": "flow-2"}, True),
    ],
    ids=["retry", "another activity id", "another run", "another flow"],
)
async def test_once_is_keyed_by_workflow_run_and_activity(
    db: Sessions, seeded: Seeded, second: dict[str, Any], acts_again: bool
) -> None:
    """The same grant twice: a retry of the step replays the first balance; the same input
    at any other workflow, run or activity id is granted again."""
    acts = GrantActivities(db, RULES)
    step = Stones(student_id=seeded.student_id, amount=100, now=T0)
    first = await step_env("1").run(acts.grant_stones, step)
    again = await step_env(**second).run(acts.grant_stones, step)

    assert first.stones == 100
    assert again.stones == (200 if acts_again else 100)
    async with db() as session:
        stones = (await ledger.balances(session, seeded.student_id, T0)).stones
    assert stones == again.stones


async def test_the_same_step_with_another_input_is_refused(db: Sessions, seeded: Seeded) -> None:
    """A step's input is fixed by its workflow's history; another input under the same key is
    a bug, refused (not retried) rather than answered with the first result."""
    acts = GrantActivities(db, RULES)
    await step_env("1").run(
        acts.grant_stones, Stones(student_id=seeded.student_id, amount=100, now=T0)
    )
    with pytest.raises(ApplicationError) as refused:
        await step_env("1", attempt=2).run(
            acts.grant_stones, Stones(student_id=seeded.student_id, amount=999, now=T0)
        )
    assert (refused.value.type, refused.value.non_retryable) == ("idempotency_key_reused", True)
    async with db() as session:
        assert (await ledger.balances(session, seeded.student_id, T0)).stones == 100


async def test_a_refused_step_leaves_no_key_and_acts_when_tried_again(
    db: Sessions, seeded: Seeded
) -> None:
    """covers: LP-6. A refusal rolls back its transaction, key included: the same step tried
    again (by hand, after a grant) is not answered with the old refusal."""
    acts = ClassRequestActivities(db, RULES)
    async with db.begin() as session:
        poor = await people.register_student(
            session, name="P", level=1, time_zone="UTC", exclusive_teacher_id=None, now=T0
        )
    step = await new_request(db, Seeded(student_id=poor.id, teacher_id=seeded.teacher_id))
    with pytest.raises(ApplicationError) as refused:
        await step_env("1").run(acts.hold_request_payment, step)
    assert refused.value.type == "insufficient_balance"
    assert (await counts(db, poor.id))["keys"] == 0

    async with db.begin() as session:
        await ledger.grant(session, poor.id, Asset.credit, 1, CourseType.major, LP, T0)
    held: RequestView = await step_env("1", attempt=2).run(acts.hold_request_payment, step)
    assert held.state is RequestState.pending
    assert (await counts(db, poor.id))["credits"] == 0
