"""Dino-home worry-free priority booking (恐龙之家, SD-3, LP-7): the LP selects students in bulk
and, for each, books an open slot or requests a time; only students with a finished class in
the current week (Mon–Sun, Asia/Shanghai) qualify."""

import asyncio
from datetime import date
from typing import Any, Self

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from api import flows
from api.context import Context, caller, describe
from api.errors import error_body
from api.schemas import ClassOut, NewRequest
from api.types import Id, UtcDatetime
from domain.channels import Operation
from domain.class_request import RequestView
from domain.payment import Payment
from domain.words import CourseType
from store import classes, dino_home

router = APIRouter(prefix="/v1/dino-home", tags=["dino-home"])


class PriorityItem(BaseModel):
    """Book an open slot (timeslot_id), or request a time (teacher_id and start_at)."""

    student_id: Id
    timeslot_id: Id | None = None
    teacher_id: Id | None = None
    start_at: UtcDatetime | None = None

    @model_validator(mode="after")
    def _book_or_request(self) -> Self:
        books = self.timeslot_id is not None
        requests = self.teacher_id is not None or self.start_at is not None
        if books == requests or (requests and (self.teacher_id is None or self.start_at is None)):
            raise ValueError("name either timeslot_id, or both teacher_id and start_at")
        return self


class Priority(BaseModel):
    items: list[PriorityItem] = Field(min_length=1, max_length=100)
    course_type: CourseType = CourseType.major
    payment: Payment = Payment()


class PriorityResult(BaseModel):
    student_id: Id
    booked: ClassOut | None = None
    request: RequestView | None = None
    error: dict[str, Any] | None = None


class PriorityOutcome(BaseModel):
    week: date = Field(description="the business week (its Monday) whose finished classes count")
    results: list[PriorityResult]


@router.post(
    "/priority",
    status_code=200,
    **describe(
        Operation.dino_home_priority,
        ["SD-3", "LP-7"],
        "For each selected student, book an open slot (timeslot_id) or request a time "
        "(teacher_id, start_at: a class-request flow), paid as `payment` for `course_type`. "
        "Only students with a finished class in the current week (Mon-Sun, Asia/Shanghai) "
        "qualify; the others get the error not_eligible. The response lists each item's "
        "outcome in order: the class booked, the request made, or the error.",
    ),
)
async def priority(
    body: Priority, ctx: Context = caller(Operation.dino_home_priority)
) -> PriorityOutcome:
    async def qualify(session: AsyncSession) -> set[int]:
        return await dino_home.eligible(
            session, (i.student_id for i in body.items), ctx.now, ctx.rules
        )

    qualified = await ctx.read(qualify)
    results: list[PriorityResult | None] = [None] * len(body.items)
    asks = [n for n, item in enumerate(body.items) if item.timeslot_id is None]
    gate = asyncio.Semaphore(8)

    async def ask(n: int) -> None:
        """A request is its own class-request flow (idempotent on the key and its position),
        asked with no transaction open."""
        item = body.items[n]
        assert item.teacher_id is not None and item.start_at is not None
        new = NewRequest(
            student_id=item.student_id,
            teacher_id=item.teacher_id,
            start_at=item.start_at,
            course_type=body.course_type,
            payment=body.payment,
        )
        async with gate:
            try:
                await ctx.read(
                    lambda session: dino_home.check_eligible(
                        session, item.student_id, qualified, ctx.now, ctx.rules
                    )
                )
                view = await flows.request_class(ctx, new, key_suffix=f"#{n}")
                results[n] = PriorityResult(student_id=item.student_id, request=view)
            except Exception as exc:
                results[n] = PriorityResult(student_id=item.student_id, error=error_body(exc))

    await asyncio.gather(*(ask(n) for n in asks))

    async def book(session: AsyncSession) -> PriorityOutcome:
        """The bookings, in one transaction, each in its own savepoint."""
        booked: list[PriorityResult] = []
        for item in body.items:
            if item.timeslot_id is None:
                continue
            result = PriorityResult(student_id=item.student_id)
            try:
                async with session.begin_nested():
                    await dino_home.check_eligible(
                        session, item.student_id, qualified, ctx.now, ctx.rules
                    )
                    cls, hold_flow = await classes.book_class(
                        session,
                        student_id=item.student_id,
                        timeslot_id=item.timeslot_id,
                        course_type=body.course_type,
                        payment=body.payment,
                        lesson=None,
                        actor=ctx.actor,
                        now=ctx.now,
                        rules=ctx.rules,
                    )
                    result.booked = ClassOut.model_validate(cls)
                if hold_flow is not None:
                    ctx.after_commit(
                        ctx.flows.tell_hold_booked, hold_flow, cls.id, item.timeslot_id
                    )
            except Exception as exc:
                result.error = error_body(exc)
            booked.append(result)
        return PriorityOutcome(week=dino_home.current_week(ctx.now, ctx.rules), results=booked)

    bookings = iter((await ctx.run(body, PriorityOutcome, book)).results)
    return PriorityOutcome(
        week=dino_home.current_week(ctx.now, ctx.rules),
        results=[r if r is not None else next(bookings) for r in results],
    )
