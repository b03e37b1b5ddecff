"""Who may do what (docs/architecture.md "Channels and who may do what").

One table: each operation of the API names the channels allowed to call it. Parent channels
act only for their own student and the teacher portal only for its own teacher; the staff
channels act for anyone, within the operations listed here.
"""

from enum import StrEnum

from pydantic import BaseModel

from domain.errors import ProductNotSold
from domain.words import Product


class Channel(StrEnum):
    parent_pc = "parent_pc"
    parent_h5 = "parent_h5"
    teacher = "teacher"
    curriculum = "curriculum"
    classroom = "classroom"
    intl = "intl"
    tmk = "tmk"
    supply_demand = "supply_demand"
    fireman = "fireman"
    lp = "lp"
    cc = "cc"
    marketing = "marketing"


PARENTS = frozenset({Channel.parent_pc, Channel.parent_h5})
EVERYONE = frozenset(Channel)


class Operation(StrEnum):
    register_teacher = "register_teacher"
    register_student = "register_student"
    read_teacher = "read_teacher"
    read_student = "read_student"
    open_timeslots = "open_timeslots"
    close_timeslots = "close_timeslots"
    read_availability = "read_availability"
    book_class = "book_class"
    book_classes_batch = "book_classes_batch"
    cancel_class = "cancel_class"
    read_class = "read_class"
    grant = "grant"
    read_balances = "read_balances"
    read_audit = "read_audit"
    request_class = "request_class"
    request_classes_batch = "request_classes_batch"
    answer_request = "answer_request"
    withdraw_request = "withdraw_request"
    read_requests = "read_requests"
    teacher_cancel = "teacher_cancel"
    manage_hold = "manage_hold"
    book_overbooked = "book_overbooked"
    register_and_book_trial = "register_and_book_trial"
    book_instant_class = "book_instant_class"
    enter_classroom = "enter_classroom"
    swap_teacher = "swap_teacher"
    reserve_teachers = "reserve_teachers"
    read_flow = "read_flow"
    propose_contract = "propose_contract"
    answer_contract = "answer_contract"
    terminate_contract = "terminate_contract"
    read_contract = "read_contract"
    read_contract_weeks = "read_contract_weeks"
    make_up_booking = "make_up_booking"
    save_booking_rules = "save_booking_rules"
    read_booking_rules = "read_booking_rules"
    run_weekly_booking = "run_weekly_booking"
    read_booking_runs = "read_booking_runs"
    set_exclusive_teacher = "set_exclusive_teacher"
    finish_class = "finish_class"
    undo_finish = "undo_finish"
    adjust_label = "adjust_label"
    read_teacher_penalties = "read_teacher_penalties"
    dino_home_priority = "dino_home_priority"
    create_learning_progress = "create_learning_progress"
    book_advanced_pair = "book_advanced_pair"
    force_book = "force_book"
    change_teacher = "change_teacher"
    change_student = "change_student"
    fake_cancel = "fake_cancel"
    start_course = "start_course"
    read_exclusive_teacher = "read_exclusive_teacher"
    direct_product_slots = "direct_product_slots"
    manage_stone_campaigns = "manage_stone_campaigns"
    read_stone_campaigns = "read_stone_campaigns"
    create_open_class = "create_open_class"
    manage_open_class = "manage_open_class"
    read_open_classes = "read_open_classes"
    book_open_class = "book_open_class"
    buy_replay = "buy_replay"
    read_replays = "read_replays"
    read_events = "read_events"
    manage_webhooks = "manage_webhooks"


_STAFF_BOOKERS = frozenset(
    {Channel.lp, Channel.cc, Channel.tmk, Channel.curriculum, Channel.classroom, Channel.intl}
)

ALLOWED: dict[Operation, frozenset[Channel]] = {
    Operation.register_teacher: frozenset({Channel.fireman, Channel.supply_demand}),
    Operation.register_student: frozenset({Channel.cc, Channel.tmk, Channel.lp, Channel.fireman}),
    Operation.read_teacher: EVERYONE,
    Operation.read_student: EVERYONE - {Channel.teacher},
    Operation.open_timeslots: frozenset({Channel.teacher, Channel.fireman}),
    Operation.close_timeslots: frozenset({Channel.teacher, Channel.fireman}),
    Operation.read_availability: EVERYONE,
    Operation.book_class: PARENTS | _STAFF_BOOKERS,
    Operation.book_classes_batch: frozenset({Channel.lp}),
    Operation.cancel_class: PARENTS | _STAFF_BOOKERS | {Channel.fireman},
    Operation.read_class: EVERYONE,
    Operation.grant: frozenset(
        {Channel.fireman, Channel.cc, Channel.tmk, Channel.lp, Channel.marketing}
    ),
    Operation.read_balances: EVERYONE - {Channel.teacher},
    Operation.read_audit: frozenset({Channel.fireman, Channel.supply_demand}),
    Operation.request_class: PARENTS | {Channel.lp},
    Operation.request_classes_batch: frozenset({Channel.lp}),
    Operation.answer_request: frozenset({Channel.teacher}),
    Operation.withdraw_request: PARENTS | {Channel.lp},
    Operation.read_requests: PARENTS | {Channel.teacher, Channel.lp, Channel.fireman},
    Operation.teacher_cancel: frozenset({Channel.teacher, Channel.fireman}),
    Operation.manage_hold: frozenset({Channel.fireman}),
    # Over-booking (TMK-1, CC-1, SD-5a), real booking (H5-10), instant class (H5-9),
    # classroom entry and match (CLS-2, SD-5c), in-class teacher swap (SD-5d, FM-7).
    Operation.book_overbooked: frozenset({Channel.tmk, Channel.cc}),
    Operation.register_and_book_trial: frozenset({Channel.parent_h5, Channel.tmk, Channel.cc}),
    Operation.book_instant_class: PARENTS,
    Operation.enter_classroom: frozenset({Channel.classroom}),
    Operation.swap_teacher: frozenset({Channel.fireman}),
    Operation.reserve_teachers: frozenset({Channel.supply_demand, Channel.fireman}),
    Operation.read_flow: frozenset(
        {Channel.fireman, Channel.lp, Channel.supply_demand, Channel.cc, Channel.tmk}
    ),
    # Contracts (TCH-6, SD-7, SD-4), weekly booking (SD-1, SD-2, SD-6, LP-1).
    Operation.propose_contract: frozenset({Channel.lp}),
    Operation.answer_contract: frozenset({Channel.teacher}),
    Operation.terminate_contract: frozenset({Channel.lp}),
    Operation.read_contract: PARENTS
    | {Channel.teacher, Channel.lp, Channel.fireman, Channel.supply_demand},
    Operation.read_contract_weeks: frozenset(
        {Channel.teacher, Channel.lp, Channel.fireman, Channel.supply_demand}
    ),
    Operation.make_up_booking: frozenset({Channel.lp}),
    Operation.save_booking_rules: frozenset({Channel.lp}),
    Operation.read_booking_rules: frozenset({Channel.lp, Channel.supply_demand, Channel.fireman}),
    Operation.run_weekly_booking: frozenset({Channel.lp, Channel.supply_demand}),
    Operation.read_booking_runs: frozenset({Channel.lp, Channel.supply_demand, Channel.fireman}),
    Operation.set_exclusive_teacher: frozenset({Channel.lp, Channel.supply_demand}),
    # Finish (FM-3, FM-4), labels (LP-4, CC-7, FM-5), dino-home (SD-3, LP-7),
    # learning progress (CUR-1, TMK-7, CC-8), all-round advanced pairs (CUR-1, CC-2).
    Operation.finish_class: frozenset({Channel.fireman}),
    Operation.undo_finish: frozenset({Channel.fireman}),
    Operation.adjust_label: frozenset({Channel.lp, Channel.cc, Channel.fireman}),
    # A teacher's penalties (TCH-5, teacher labels): the teacher portal (their own), fireman.
    Operation.read_teacher_penalties: frozenset({Channel.teacher, Channel.fireman}),
    Operation.dino_home_priority: frozenset({Channel.lp, Channel.supply_demand}),
    Operation.create_learning_progress: frozenset(
        {Channel.curriculum, Channel.tmk, Channel.cc, Channel.lp}
    ),
    Operation.book_advanced_pair: frozenset({Channel.curriculum, Channel.cc}),
    # Force-book (FM-1), change teacher (FM-5; trials: TMK-3, CC-3), change student (TMK-5, CC-5).
    Operation.force_book: frozenset({Channel.fireman}),
    Operation.change_teacher: frozenset({Channel.fireman, Channel.tmk, Channel.cc}),
    Operation.change_student: frozenset({Channel.tmk, Channel.cc}),
    # Fake cancel (TMK-4, CC-4): the slot is held for the channel that cancels.
    Operation.fake_cancel: frozenset({Channel.tmk, Channel.cc}),
    # Start a course (H5-6, LP-5); the exclusive teacher and priority window, read (H5-7, H5-8).
    Operation.start_course: frozenset({Channel.parent_h5, Channel.lp}),
    Operation.read_exclusive_teacher: frozenset(
        {Channel.parent_h5, Channel.lp, Channel.supply_demand, Channel.fireman}
    ),
    # Product-directed slots (INT-1): the dual-teacher / international channel reserves and
    # releases them. Energy-stone campaigns (TCH-7): the marketing platform sets them; every
    # channel may read the prices.
    Operation.direct_product_slots: frozenset({Channel.intl}),
    Operation.manage_stone_campaigns: frozenset({Channel.marketing}),
    Operation.read_stone_campaigns: EVERYONE,
    # Open classes (CUR-2, CLS-1): curriculum and the classroom create, describe, list and
    # price them; parents (PAR-2, H5-2) and the classroom book seats; parents buy replays.
    # Parents see listed classes only.
    Operation.create_open_class: frozenset({Channel.curriculum, Channel.classroom}),
    Operation.manage_open_class: frozenset({Channel.curriculum, Channel.classroom}),
    Operation.read_open_classes: EVERYONE,
    Operation.book_open_class: PARENTS | {Channel.classroom},
    Operation.buy_replay: PARENTS | {Channel.classroom},
    Operation.read_replays: EVERYONE - {Channel.teacher},
    # The event feed: parents see their student's events, the teacher portal its teacher's,
    # staff everything; webhooks are the staff channels' own.
    Operation.read_events: EVERYONE,
    Operation.manage_webhooks: EVERYONE - PARENTS - {Channel.teacher},
}

# The channels that sell each product line (INT-1): only their bookings may name the product,
# and so take the slots directed at it.
PRODUCT_SELLERS: dict[Product, frozenset[Channel]] = {
    Product.dual_teacher: frozenset({Channel.intl}),
    Product.international: frozenset({Channel.intl}),
}


def check_sells(channel: Channel, product: Product) -> None:
    """ProductNotSold unless the channel sells the product line (INT-1)."""
    if channel not in PRODUCT_SELLERS[product]:
        raise ProductNotSold(
            f"channel {channel.value} does not sell {product.value}",
            channel=channel.value,
            product=product.value,
            sold_by=sorted(c.value for c in PRODUCT_SELLERS[product]),
        )


class Actor(BaseModel, frozen=True):
    """Who acts: the calling channel and the user it names in X-Actor-Id."""

    channel: Channel
    id: str
