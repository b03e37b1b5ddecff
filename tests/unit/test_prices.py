"""What a class costs and how a booking is paid: one credit of its course type, one coupon, or
its price in energy stones."""

import pytest
from pydantic import ValidationError

from domain.payment import Payment
from domain.rules import BookingRules, price
from domain.words import Asset, CourseType

RULES = BookingRules()


@pytest.mark.parametrize("course_type", list(CourseType))
def test_every_course_type_has_a_positive_stone_price(course_type: CourseType) -> None:
    """covers: PAR-1, H5-1. A course type without a price would fail every stones booking."""
    assert price(Asset.stones, course_type, RULES) == RULES.stone_prices[course_type] > 0


@pytest.mark.parametrize("asset", [Asset.credit, Asset.coupon])
@pytest.mark.parametrize("course_type", list(CourseType))
def test_a_credit_or_a_coupon_pays_one_class(asset: Asset, course_type: CourseType) -> None:
    """covers: PAR-1, H5-1, LP-2"""
    assert price(asset, course_type, RULES) == 1


def test_stone_prices_follow_the_course() -> None:
    """covers: H5-1. An L7 major costs more stones than a major, a trial fewer."""
    major = price(Asset.stones, CourseType.major, RULES)
    assert price(Asset.stones, CourseType.l7_major, RULES) > major
    assert price(Asset.stones, CourseType.trial, RULES) < major


def test_stone_prices_are_settings() -> None:
    rules = BookingRules(stone_prices={**RULES.stone_prices, CourseType.major: 80})
    assert price(Asset.stones, CourseType.major, rules) == 80
    assert price(Asset.stones, CourseType.special, rules) == RULES.stone_prices[CourseType.special]


def test_a_setting_of_one_stone_price_keeps_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """YUEKE_RULES__STONE_PRICES='{"major": 120}' prices the major course and no other: a
    stones booking of a special course must not find its price gone (a 500)."""
    from yueke.settings import Settings

    monkeypatch.setenv("YUEKE_RULES__STONE_PRICES", '{"major": 120}')
    rules = Settings().rules
    assert price(Asset.stones, CourseType.major, rules) == 120
    for course_type in CourseType:
        if course_type is not CourseType.major:
            assert price(Asset.stones, course_type, rules) == RULES.stone_prices[course_type]


def test_a_stone_price_is_positive() -> None:
    with pytest.raises(ValidationError):
        BookingRules(stone_prices={CourseType.major: 0})


def test_payment_defaults_to_a_credit() -> None:
    """covers: PAR-1. A booking that names no payment pays with a credit."""
    assert Payment() == Payment(asset=Asset.credit, coupon_id=None)


@pytest.mark.parametrize(
    "payment",
    [
        {"asset": "coupon", "coupon_id": 7},
        {"asset": "credit"},
        {"asset": "stones"},
    ],
)
def test_valid_payments(payment: dict[str, object]) -> None:
    """covers: PAR-1, H5-1"""
    assert Payment.model_validate(payment).model_dump(mode="json", exclude_none=True) == payment


@pytest.mark.parametrize(
    "payment",
    [
        {"asset": "coupon"},
        {"asset": "coupon", "coupon_id": None},
        {"asset": "credit", "coupon_id": 7},
        {"asset": "stones", "coupon_id": 7},
        {"asset": "gold"},
    ],
)
def test_a_coupon_id_belongs_to_a_coupon_payment_only(payment: dict[str, object]) -> None:
    """covers: PAR-1, H5-1. A coupon payment without its id, or an id on another payment, is
    ambiguous: refused before anything is charged."""
    with pytest.raises(ValidationError):
        Payment.model_validate(payment)


def test_payment_is_immutable() -> None:
    """The payment crosses Temporal inside workflow inputs; a flow must not change it."""
    paid = Payment(asset=Asset.stones)
    with pytest.raises(ValidationError):
        paid.asset = Asset.credit  # type: ignore[misc]
