"""Dual-excellence contract (双优合约, TCH-6, SD-7).

The LP creates a weekly pairing of a student with a Chinese and a foreign teacher: the
contract is active at once and weeks W1 and W2 are booked with both teachers. Then, at the
start of every week, the week two weeks later is offered to its teachers: each teacher's
contract-directed slot is opened, and the teacher agrees (the class is booked on it) or
declines before the week before it begins; a no, or no answer by then, gives the slot to
general inventory and the week keeps its reason. The contract goes on until its last week is
over or the LP terminates it (future classes cancelled and refunded, weeks awaiting an answer
withdrawn, slots removed). A long contract continues as new every few dozen weeks, so its
history stays bounded.

Flows started before the `weekly-answers` marker keep their way: the LP proposes, both
teachers agree to the whole contract before its first week, then W1, W2 and every later week
are booked without asking.

The teachers' answers are updates that only record what was said; `run` records them in the
store one at a time, so an answer and its deadline never run at once.
"""

from datetime import date, datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.contract import ContractActivities
    from domain.channels import Actor
    from domain.contract import (
        Answer,
        AnswerContract,
        AnswerContractWeek,
        BookContractWeek,
        CloseContract,
        ContractClosed,
        ContractFlowState,
        ContractInput,
        ContractState,
        ContractView,
        ContractWeekState,
        ExpireContractWeeks,
        Progress,
        ProposeContract,
        Termination,
        WeekAnswer,
        WeekBooking,
        WeekOffer,
        WeekOutcome,
    )
    from domain.refusal import Refusal
    from workflows.common import STORE_STEP, refusal_of, refuse

# Flows started before this marker recorded the teachers' answers inside the update handler;
# they keep doing so when replayed (see `_answer`).
RUN_RECORDS_ANSWERS = "run-records-answers"
# Flows started from this marker on create the contract with W1 and W2 booked and offer each
# later week to its teachers; those started before keep proposing and booking without asking.
WEEKLY_ANSWERS = "weekly-answers"
WEEK = timedelta(weeks=1)
# Weeks of outcomes the `state` query keeps; the full record is in contract_weeks.
RECENT_WEEKS = 8


@workflow.defn
class ContractWorkflow:
    @workflow.init
    def __init__(self, contract: ContractInput) -> None:
        """A continued run's state is restored here, not in `run`: updates delivered in its
        first workflow task are validated and handled before `run` begins."""
        self.view: ContractView | None = None
        self.refusal: Refusal | None = None
        self.termination: Termination | None = None
        self.recent: list[WeekBooking] = []
        self.next_week: date | None = None
        self.weeks_booked = 0
        self.last_week_ends_at: datetime | None = None
        # The teachers' answers waiting for `run`, by update id, and what the store made of them.
        self.answers: list[tuple[str, Answer, bool]] = []
        self.recorded: dict[str, ContractView | Refusal] = {}
        # Weekly answers: the weeks offered and not yet answered, the teachers' answers waiting
        # for `run` (by update id) and what the store made of them.
        self.weekly = False
        self.awaiting: list[WeekBooking] = []
        self.week_answers: list[tuple[str, WeekAnswer]] = []
        self.week_recorded: dict[str, WeekBooking | Refusal] = {}
        progress = contract.progress
        if progress is not None:
            self.view, self.recent = progress.view, progress.history
            self.next_week, self.weeks_booked = progress.next_week, progress.weeks_booked
            self.last_week_ends_at = progress.last_week_ends_at
            self.weekly, self.awaiting = progress.weekly_answers, progress.awaiting

    @workflow.run
    async def run(self, contract: ContractInput) -> ContractView | None:
        progress = contract.progress
        if progress is None and workflow.patched(WEEKLY_ANSWERS):
            next_offer_at = await self._create(contract)
            if next_offer_at is None:
                return None
            return await self._offer_weeks(contract, next_offer_at)
        if progress is None:
            if not await self._propose(contract):
                return None
            next_booking_at = await self._wait_for_answers(contract)
            if next_booking_at is None:
                await workflow.wait_condition(workflow.all_handlers_finished)
                assert self.view is not None
                return self.view
        else:
            next_booking_at = progress.next_booking_at
            if progress.weekly_answers:
                return await self._offer_weeks(contract, next_booking_at)
        return await self._keep_booking(contract, next_booking_at)

    async def _create(self, contract: ContractInput) -> datetime | None:
        """The contract, active with W1 and W2 booked; when the week after is offered."""
        try:
            created = await workflow.execute_activity_method(
                ContractActivities.create_contract,
                ProposeContract(contract=contract, now=workflow.now()),
                **STORE_STEP,
            )
        except ActivityError as error:
            self.refusal = refusal_of(error)
            return None
        self.view, self.weekly = created.view, True
        for outcome in created.weeks:
            self._booked(outcome)
        return created.weeks[-1].next_booking_at

    async def _offer_weeks(
        self, contract: ContractInput, next_offer_at: datetime
    ) -> ContractView | None:
        """Every week, the week two ahead offered to its teachers; their answers recorded as
        they come; each week awaiting an answer expired at its deadline."""
        assert self.view is not None and self.next_week is not None
        offered_this_run = 0
        while self.termination is None:
            done = self.view.weeks is not None and self.weeks_booked >= self.view.weeks
            ends_at = self.last_week_ends_at
            wakes = [w.answer_by for w in self.awaiting if w.answer_by is not None]
            wakes.append(ends_at if done and ends_at is not None else next_offer_at)
            try:
                await workflow.wait_condition(
                    lambda: bool(self.week_answers) or self.termination is not None,
                    timeout=max(min(wakes) - workflow.now(), timedelta(0)),
                )
            except TimeoutError:
                pass
            await self._record_week_answers()
            if self._terminating():
                break
            now = workflow.now()
            if any(w.answer_by is not None and w.answer_by <= now for w in self.awaiting):
                expired = await workflow.execute_activity_method(
                    ContractActivities.expire_contract_weeks,
                    ExpireContractWeeks(contract_id=self.view.id, actor=contract.actor, now=now),
                    **STORE_STEP,
                )
                for booking in expired.weeks:
                    self._settled(booking)
                # Whatever else was overdue had been settled already.
                self.awaiting = [
                    w for w in self.awaiting if w.answer_by is None or w.answer_by > now
                ]
            if done:
                if not self.awaiting and ends_at is not None and now >= ends_at:
                    await self._close(ContractState.finished, None, contract.actor)
                    return await self._ended()
                continue
            if now < next_offer_at:
                continue
            offer = await workflow.execute_activity_method(
                ContractActivities.offer_contract_week,
                BookContractWeek(
                    contract_id=self.view.id, week=self.next_week, actor=contract.actor, now=now
                ),
                **STORE_STEP,
            )
            self._offered(offer)
            next_offer_at = offer.next_offer_at
            offered_this_run += 1
            if (
                offered_this_run >= contract.weeks_per_run
                or workflow.info().is_continue_as_new_suggested()
            ):
                # A termination accepted meanwhile waits for the close below: it ends the loop.
                while not workflow.all_handlers_finished() and self.termination is None:
                    await workflow.wait_condition(
                        lambda: (
                            bool(self.week_answers)
                            or workflow.all_handlers_finished()
                            or self.termination is not None
                        )
                    )
                    await self._record_week_answers()
                if self.termination is None:
                    progress = Progress(
                        view=self.view,
                        next_week=self.next_week,
                        weeks_booked=self.weeks_booked,
                        history=self.recent,
                        next_booking_at=next_offer_at,
                        last_week_ends_at=self.last_week_ends_at,
                        weekly_answers=True,
                        awaiting=self.awaiting,
                    )
                    workflow.continue_as_new(contract.model_copy(update={"progress": progress}))
        assert self.termination is not None
        await self._close(ContractState.terminated, self.termination.reason, self.termination.actor)
        self.awaiting = []
        return await self._ended()

    async def _ended(self) -> ContractView:
        """Answers accepted while the contract closed get the refusal they would have met a
        moment later; then every handler is let finish."""
        for update_id, _ in self.week_answers:
            self.week_recorded[update_id] = self._closed_refusal()
        self.week_answers.clear()
        await workflow.wait_condition(workflow.all_handlers_finished)
        assert self.view is not None
        return self.view

    async def _record_week_answers(self) -> None:
        while self.week_answers:
            update_id, answer = self.week_answers.pop(0)
            assert self.view is not None
            try:
                booking = await workflow.execute_activity_method(
                    ContractActivities.answer_contract_week,
                    AnswerContractWeek(contract_id=self.view.id, answer=answer, now=workflow.now()),
                    **STORE_STEP,
                )
            except ActivityError as error:
                self.week_recorded[update_id] = refusal_of(error)
                continue
            self._settled(booking)
            self.week_recorded[update_id] = booking

    def _terminating(self) -> bool:
        return self.termination is not None

    def _offered(self, offer: WeekOffer) -> None:
        self.recent = (self.recent + offer.bookings)[-2 * RECENT_WEEKS :]
        self.awaiting += [b for b in offer.bookings if b.state is ContractWeekState.awaiting]
        self.next_week = offer.week + WEEK
        self.weeks_booked += 1
        self.last_week_ends_at = offer.ends_at

    def _settled(self, booking: WeekBooking) -> None:
        """A week no longer awaiting: its outcome replaces what was known of it."""
        key = (booking.week, booking.role)
        self.awaiting = [w for w in self.awaiting if (w.week, w.role) != key]
        self.recent = [booking if (w.week, w.role) == key else w for w in self.recent]

    async def _propose(self, contract: ContractInput) -> bool:
        try:
            self.view = await workflow.execute_activity_method(
                ContractActivities.propose_contract,
                ProposeContract(contract=contract, now=workflow.now()),
                **STORE_STEP,
            )
            return True
        except ActivityError as error:
            self.refusal = refusal_of(error)
            return False

    async def _wait_for_answers(self, contract: ContractInput) -> datetime | None:
        """Both yes: start, and return when the next week is due; else None (closed)."""
        assert self.view is not None and self.view.answer_by is not None
        answer_by = self.view.answer_by
        while not self._both_agreed() and self._open() and self.termination is None:
            try:
                await workflow.wait_condition(
                    lambda: (
                        bool(self.answers)
                        or self._both_agreed()
                        or not self._open()
                        or self.termination is not None
                    ),
                    timeout=max(answer_by - workflow.now(), timedelta(0)),
                )
            except TimeoutError:
                await self._close(
                    ContractState.expired, "the teachers did not both agree in time", contract.actor
                )
                self._refuse_queued_answers()
                return None
            while self.answers:
                update_id, answer, agree = self.answers.pop(0)
                self.recorded[update_id] = await self._record_answer(answer, agree=agree)
        if self.termination is not None:
            await self._close(
                ContractState.terminated, self.termination.reason, self.termination.actor
            )
            return None
        if not self._open():  # declined
            return None
        started = await workflow.execute_activity_method(
            ContractActivities.start_contract,
            BookContractWeek(
                contract_id=contract.contract_id,
                week=contract.first_week,
                actor=contract.actor,
                now=workflow.now(),
            ),
            **STORE_STEP,
        )
        self.view = self.view.model_copy(update={"state": ContractState.active})
        for outcome in started.weeks:
            self._booked(outcome)
        return started.weeks[-1].next_booking_at

    async def _keep_booking(
        self, contract: ContractInput, next_booking_at: datetime
    ) -> ContractView | None:
        assert self.view is not None and self.next_week is not None
        booked_this_run = 0
        while self.termination is None:
            done = self.view.weeks is not None and self.weeks_booked >= self.view.weeks
            wake_at = self.last_week_ends_at if done and self.last_week_ends_at else next_booking_at
            try:
                await workflow.wait_condition(
                    lambda: self.termination is not None,
                    timeout=max(wake_at - workflow.now(), timedelta(0)),
                )
                break
            except TimeoutError:
                pass
            if done:
                await self._close(ContractState.finished, None, contract.actor)
                await workflow.wait_condition(workflow.all_handlers_finished)
                return self.view
            outcome = await workflow.execute_activity_method(
                ContractActivities.book_contract_week,
                BookContractWeek(
                    contract_id=contract.contract_id,
                    week=self.next_week,
                    actor=contract.actor,
                    now=workflow.now(),
                ),
                **STORE_STEP,
            )
            self._booked(outcome)
            next_booking_at = outcome.next_booking_at
            booked_this_run += 1
            if (
                booked_this_run >= contract.weeks_per_run
                or workflow.info().is_continue_as_new_suggested()
            ):
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() or self.termination is not None
                )
                if self.termination is None:
                    progress = Progress(
                        view=self.view,
                        next_week=self.next_week,
                        weeks_booked=self.weeks_booked,
                        history=self.recent,
                        next_booking_at=next_booking_at,
                        last_week_ends_at=self.last_week_ends_at,
                    )
                    workflow.continue_as_new(contract.model_copy(update={"progress": progress}))
        assert self.termination is not None
        await self._close(ContractState.terminated, self.termination.reason, self.termination.actor)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view

    def _booked(self, outcome: WeekOutcome) -> None:
        self.recent = (self.recent + outcome.bookings)[-2 * RECENT_WEEKS :]
        self.next_week = outcome.week + WEEK
        self.weeks_booked += 1
        self.last_week_ends_at = outcome.ends_at

    async def _close(self, state: ContractState, reason: str | None, actor: Actor) -> None:
        assert self.view is not None
        self.view = await workflow.execute_activity_method(
            ContractActivities.close_contract,
            CloseContract(
                contract_id=self.view.id,
                state=state,
                reason=reason,
                actor=actor,
                now=workflow.now(),
            ),
            **STORE_STEP,
        )

    def _closed_refusal(self) -> Refusal:
        assert self.view is not None
        return Refusal.of(
            ContractClosed("the contract is closed", id=self.view.id, state=self.view.state.value)
        )

    def _refuse_queued_answers(self) -> None:
        """Answers accepted while the contract was being closed get the refusal they would
        have met a moment later."""
        for update_id, _, _ in self.answers:
            self.recorded[update_id] = self._closed_refusal()
        self.answers.clear()

    def _open(self) -> bool:
        return self.view is not None and self.view.state in (
            ContractState.proposed,
            ContractState.active,
        )

    def _both_agreed(self) -> bool:
        return bool(self.view and self.view.chinese_agreed and self.view.foreign_agreed)

    @workflow.update
    async def proposed(self) -> ContractView:
        """The contract as recorded, or the refusal (asked right after the start)."""
        await workflow.wait_condition(lambda: self.view is not None or self.refusal is not None)
        if self.view is None:
            assert self.refusal is not None
            raise refuse(self.refusal)
        return self.view

    @workflow.update
    async def agree(self, answer: Answer) -> ContractView:
        """A teacher agrees; the second yes returns once W1 and W2 are booked."""
        await self._answer(answer, agree=True)
        await workflow.wait_condition(
            lambda: (
                self.view is not None
                and (not self._both_agreed() or self.view.state is not ContractState.proposed)
            )
        )
        assert self.view is not None
        return self.view

    @workflow.update
    async def decline(self, answer: Answer) -> ContractView:
        await self._answer(answer, agree=False)
        assert self.view is not None
        return self.view

    async def _answer(self, answer: Answer, *, agree: bool) -> None:
        """Record the answer for `run`; return once the store has it, or refuse as it did."""
        if workflow.patched(RUN_RECORDS_ANSWERS):
            update_id = workflow.current_update_info().id  # type: ignore[union-attr]
            self.answers.append((update_id, answer, agree))
            await workflow.wait_condition(lambda: update_id in self.recorded)
            recorded = self.recorded.pop(update_id)
        else:
            recorded = await self._record_answer(answer, agree=agree)
        if isinstance(recorded, Refusal):
            raise refuse(recorded)

    async def _record_answer(self, answer: Answer, *, agree: bool) -> ContractView | Refusal:
        assert self.view is not None
        try:
            self.view = await workflow.execute_activity_method(
                ContractActivities.record_contract_answer,
                AnswerContract(
                    contract_id=self.view.id, answer=answer, agree=agree, now=workflow.now()
                ),
                **STORE_STEP,
            )
            return self.view
        except ActivityError as error:
            return refusal_of(error)

    @agree.validator
    def _agree_while_proposed(self, answer: Answer) -> None:
        self._still_proposed(answer)

    @decline.validator
    def _decline_while_proposed(self, answer: Answer) -> None:
        self._still_proposed(answer)

    def _still_proposed(self, answer: Answer) -> None:
        if self.view is None or self.view.state is not ContractState.proposed:
            raise ApplicationError(
                "the contract is no longer waiting for answers", type="contract_closed"
            )
        if self.termination is not None:
            raise ApplicationError("the contract is being terminated", type="contract_closed")
        if answer.teacher_id not in (self.view.chinese_teacher_id, self.view.foreign_teacher_id):
            raise ApplicationError(
                "only the contract's two teachers answer it", type="not_contract_teacher"
            )

    @workflow.update
    async def terminate(self, termination: Termination) -> ContractView:
        """The LP ends the contract: future classes cancelled and refunded, slots removed."""
        self.termination = termination
        await workflow.wait_condition(lambda: not self._open())
        assert self.view is not None
        if self.view.state is not ContractState.terminated:
            # It expired or finished while the termination waited: nothing left to end.
            raise refuse(self._closed_refusal())
        return self.view

    @terminate.validator
    def _terminate_while_open(self, termination: Termination) -> None:
        if not self._open() or self.termination is not None:
            raise ApplicationError("the contract is already closed", type="contract_closed")

    @workflow.update
    async def answer_week(self, answer: WeekAnswer) -> WeekBooking:
        """A teacher agrees to their class of one week (booked on its slot) or declines it;
        returns once the store has it, or refuses as it did."""
        update_id = workflow.current_update_info().id  # type: ignore[union-attr]
        self.week_answers.append((update_id, answer))
        await workflow.wait_condition(lambda: update_id in self.week_recorded)
        recorded = self.week_recorded.pop(update_id)
        if isinstance(recorded, Refusal):
            raise refuse(recorded)
        return recorded

    @answer_week.validator
    def _week_answers_open(self, answer: WeekAnswer) -> None:
        if not self.weekly or self.termination is not None or not self._open():
            raise ApplicationError(
                "the contract takes no answers for its weeks", type="contract_closed"
            )

    @workflow.query
    def state(self) -> ContractFlowState:
        return ContractFlowState(
            contract=self.view,
            weeks_booked=self.weeks_booked,
            next_week=self.next_week,
            recent_weeks=self.recent,
            awaiting_weeks=self.awaiting,
        )
