"""Every refusal the system gives, each with its own code and HTTP status (ARCHITECTURE rule 7).

Raised by `store` and mapped to JSON by the API; the transaction that raised is rolled back,
so a refusal never changes anything.
"""

from typing import Any


class DomainError(Exception):
    code: str = "domain_error"
    status: int = 409

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    status = 404

    def __init__(self, entity: str, entity_id: object) -> None:
        super().__init__(f"{entity} {entity_id} does not exist", entity=entity, id=entity_id)
        self.code = f"{entity}_not_found"


class Invalid(DomainError):
    """Input that is well-formed JSON but breaks a rule of time or course (422)."""

    status = 422


class FilterRequired(Invalid):
    """A listing that would otherwise scan everything names what to list by."""

    code = "filter_required"


class OffGrid(Invalid):
    code = "off_grid"


class InPast(Invalid):
    code = "in_past"


class OutsideWindow(Invalid):
    code = "outside_booking_window"


class CourseTypeNotTaught(Invalid):
    code = "course_type_not_taught"


class CourseTypeNotForChineseTeacher(Invalid):
    """Chinese teachers teach only the Chinese half of all-round advanced and of
    dual-excellence contracts."""

    code = "course_type_not_for_chinese_teacher"


class L7StudentsOnly(Invalid):
    """L7 advanced major classes (l7_major) are for Level 7 students."""

    code = "l7_students_only"


class CouponWrongCourseType(Invalid):
    code = "coupon_wrong_course_type"


class CourseTypeRequired(Invalid):
    code = "course_type_required"


class NotGrantable(Invalid):
    code = "not_grantable"


class MixedTeachers(Invalid):
    code = "mixed_teachers"


class SlotNotOpen(DomainError):
    code = "slot_not_open"


class SlotAlreadyBooked(DomainError):
    code = "slot_already_booked"


class SlotReserved(DomainError):
    """The slot is directed at someone else (a student hold, a contract, a product…)."""

    code = "slot_reserved"


class DinoHomeWindowOpen(DomainError):
    """Auto-booking of next week waits for the dino-home window to close (SD-3): until then
    next week's general slots are kept for dino-home students."""

    code = "dino_home_window_open"


class SlotForProduct(DomainError):
    """The slot is directed at a product line (INT-1): only a booking for that product takes it."""

    code = "slot_for_product"


class NotProductSlot(DomainError):
    """Only an open slot directed at a product is released back to general inventory (INT-1)."""

    code = "not_product_slot"


class CampaignOverlap(DomainError):
    """One energy-stone campaign per course type at any time (TCH-7)."""

    code = "campaign_overlap"


class CampaignOver(DomainError):
    """The energy-stone campaign has already ended (TCH-7)."""

    code = "campaign_over"


class CampaignWindowInvalid(Invalid):
    """A campaign ends after it starts, and starts no earlier than now (the past's prices are
    fixed)."""

    code = "campaign_window_invalid"


class HoldExpired(DomainError):
    code = "hold_expired"


class StudentBusy(DomainError):
    code = "student_busy"


class TeacherBusy(DomainError):
    code = "teacher_busy"


class InsufficientBalance(DomainError):
    code = "insufficient_balance"


class CouponExpired(DomainError):
    code = "coupon_expired"


class CouponUsed(DomainError):
    code = "coupon_used"


class ClassNotCancellable(DomainError):
    code = "class_not_cancellable"


class ClassStarted(DomainError):
    code = "class_started"


class RequestClosed(DomainError):
    """The class request was already answered, withdrawn or expired."""

    code = "request_closed"


class RequestExpired(DomainError):
    """The class request's deadline has passed: it can no longer be approved."""

    code = "request_expired"


class HoldClosed(DomainError):
    """The teacher-cancel hold was already booked, expired or ended."""

    code = "hold_closed"


class HoldUntilOutOfRange(Invalid):
    """A hold is extended to a time after now, no later than its last offered slot's start
    and its longest hold (`teacher_cancel_hold_max`)."""

    code = "hold_until_out_of_range"


class FirstWeekStarted(Invalid):
    """A contract's first week has begun: its teachers would have no time left to answer."""

    code = "first_week_started"


class TrialAlreadyBooked(DomainError):
    """The parent's account already has its student and their trial class (H5-10)."""

    code = "trial_already_booked"


class FlowClosed(DomainError):
    """The workflow asked is over (its business record says why)."""

    code = "flow_closed"


class Unavailable(DomainError):
    """A dependency is down or too slow: nothing was decided; retry (with the same
    Idempotency-Key, to act at most once)."""

    status = 503


class DatabaseUnavailable(Unavailable):
    code = "database_unavailable"


class DatabaseBusy(Unavailable):
    """Every pooled connection stayed busy for the pool timeout."""

    code = "database_busy"


class TemporalUnavailable(Unavailable):
    code = "temporal_unavailable"


class Unauthenticated(DomainError):
    status = 401
    code = "unauthenticated"


class Forbidden(DomainError):
    status = 403
    code = "forbidden_channel"


class ForbiddenActor(Forbidden):
    code = "forbidden_actor"


class ProductNotSold(Forbidden):
    """A booking names a product line its channel does not sell (INT-1)."""

    code = "product_not_sold_by_channel"


class IdempotencyKeyReused(Invalid):
    code = "idempotency_key_reused"


class ClassNotFinishable(DomainError):
    """Only a booked class that has started can be finished."""

    code = "class_not_finishable"


class ClassNotFinished(DomainError):
    """Undo finish and label changes apply to finished classes only."""

    code = "class_not_finished"


class TrialClassesOnly(Forbidden):
    """CC adjusts the labels of trial classes only (CC-7)."""

    code = "trial_classes_only"


class NotEligible(DomainError):
    code = "not_eligible"


class DinoHomePriority(DomainError):
    """SD-3: inside the Monday dino-home window, next week's general slots are kept for
    dino-home students (a finished class in the current or the previous business week)."""

    code = "dino_home_priority"


class NoExclusiveTeacher(DomainError):
    code = "no_exclusive_teacher"


class NotExclusiveTeachersSlot(DomainError):
    code = "not_exclusive_teachers_slot"


class TeacherKindMismatch(Invalid):
    code = "teacher_kind_mismatch"


class SameTimeslot(Invalid):
    code = "same_timeslot"


class LearningProgressExists(DomainError):
    code = "learning_progress_exists"


class LearningProgressClosed(DomainError):
    code = "learning_progress_closed"


class CourseNotStarted(DomainError):
    """A special-course class before the student's special course has started (H5-6, LP-5)."""

    code = "course_not_started"


class ClassNotBooked(DomainError):
    """The class is cancelled or finished: it can no longer change teacher or student."""

    code = "class_not_booked"


class OpenClassNotListed(DomainError):
    """A delisted (or never listed) open class takes no bookings (CUR-2, CLS-1)."""

    code = "open_class_not_listed"


class OpenClassFull(DomainError):
    """Every seat of the open class is taken."""

    code = "open_class_full"


class AlreadySeated(DomainError):
    """The student already has a seat in this open class."""

    code = "already_seated"


class OpenClassBySeat(Invalid):
    """An open class (公开课) is a group class with seats: a student takes a seat of one
    (`POST /v1/open-classes/{open_class_id}/seats`), never a 1-on-1 slot of course type open."""

    code = "open_class_by_seat"


class OpenClassSeat(DomainError):
    """A seat of an open class is not a 1-on-1 class of its teacher: a teacher's cancel (TCH-5)
    takes a whole class and offers the student other times, which a seat has no use for."""

    code = "open_class_seat"


class OpenClassHasSeats(DomainError):
    """Once a seat is taken, title and description are fixed and capacity only grows."""

    code = "open_class_has_seats"


class PaymentNotAccepted(Invalid):
    """An open-class seat is paid with credit or a coupon (PAR-2, H5-2), not energy stones."""

    code = "payment_not_accepted"


class ReplayNotForSale(DomainError):
    """The open class's replay has no price yet."""

    code = "replay_not_for_sale"


class OpenClassNotOver(DomainError):
    """A replay exists only once the open class is over."""

    code = "open_class_not_over"


class ReplayAlreadyBought(DomainError):
    code = "replay_already_bought"


class BadCursor(Invalid):
    """An event feed cursor that the feed did not give (`<xid>-<id>`)."""

    code = "bad_cursor"


class UnknownEventType(Invalid):
    """An event type not in the feed's list (docs/events.md)."""

    code = "unknown_event_type"


class WebhookUrlRefused(Invalid):
    """Webhooks go only to http(s) URLs with a host (docs/events.md, SSRF)."""

    code = "webhook_url_refused"
