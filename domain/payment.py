"""How a booking is paid: credit of the class's course type, one coupon, or energy stones."""

from typing import Self

from pydantic import BaseModel, model_validator

from domain.values import Id
from domain.words import Asset


class Payment(BaseModel, frozen=True):
    asset: Asset = Asset.credit
    coupon_id: Id | None = None

    @model_validator(mode="after")
    def _coupon_names_its_id(self) -> Self:
        if (self.asset is Asset.coupon) != (self.coupon_id is not None):
            raise ValueError("coupon_id is required for a coupon payment and only for one")
        return self
