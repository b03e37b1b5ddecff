"""Open classes (公开课, CUR-2, CLS-1, PAR-2, H5-2): one teacher's timeslot, many students.

The rules that need no database: how a seat may be paid, when a class is over (its replay
then exists), and what a replay's price may be.
"""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from domain.errors import PaymentNotAccepted
from domain.payment import Payment
from domain.rules import SLOT
from domain.words import Asset

# Seats per class, and a replay's price, at most (values a person would type by mistake
# beyond these are refused as malformed).
MAX_CAPACITY = 10_000
MAX_REPLAY_PRICE = 100_000

Capacity = Annotated[int, Field(ge=1, le=MAX_CAPACITY)]


class ReplayPrice(BaseModel, frozen=True):
    """A replay costs credits of course type `open` or energy stones (CUR-2), set per class."""

    asset: Literal[Asset.credit, Asset.stones]
    amount: Annotated[int, Field(ge=1, le=MAX_REPLAY_PRICE)]


def check_seat_payment(payment: Payment) -> None:
    """A seat is paid like an ordinary booking of course type `open`, with credit or a coupon
    (H5-2); energy stones are not taken."""
    if payment.asset is Asset.stones:
        raise PaymentNotAccepted(
            "an open-class seat is paid with credit or a coupon",
            asset=payment.asset.value,
            accepted=[Asset.credit.value, Asset.coupon.value],
        )


def over_at(start_at: datetime) -> datetime:
    """An open class is over when its timeslot ends; its replay can be had from then on."""
    return start_at + SLOT


def is_over(start_at: datetime, now: datetime) -> bool:
    return now >= over_at(start_at)
