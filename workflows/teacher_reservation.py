"""Teacher reservation (占老师, SD-5b).

A Schedule starts this flow at :28 and :58 every hour (Asia/Shanghai; settings). For each half
hour of the next 14 days it reserves open general slots into the over-booking pool to cover
the over-booked classes still without a teacher × a factor, gives back pool slots no longer
needed, and releases the pool slots of half hours already over. All in one transaction.
"""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.overbooking import TeacherReservationActivities
    from domain.overbooking import ReservationOutcome, ReserveTeachers
    from workflows.common import STORE_STEP


@workflow.defn
class TeacherReservationWorkflow:
    def __init__(self) -> None:
        self.outcome: ReservationOutcome | None = None

    @workflow.run
    async def run(self) -> ReservationOutcome:
        self.outcome = await workflow.execute_activity_method(
            TeacherReservationActivities.reserve_teachers,
            ReserveTeachers(now=workflow.now()),
            **STORE_STEP,
        )
        return self.outcome

    @workflow.query
    def state(self) -> ReservationOutcome | None:
        return self.outcome
