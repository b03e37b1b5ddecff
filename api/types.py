"""Types at the API's edge that refuse what the database would choke on, as a 422."""

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, Strict

from domain.values import Id, LocalTime, TimeZone

__all__ = ["Id", "IdParam", "LocalTime", "Text", "TimeZone", "UtcDatetime"]


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the instant falls outside years 1-9999 in UTC") from exc


# ISO 8601 with an offset, kept in UTC (ARCHITECTURE rule 8); the example is on the 30-minute
# grid.
UtcDatetime = Annotated[
    AwareDatetime, AfterValidator(_to_utc), Field(examples=["2030-01-08T10:00:00Z"])
]
# Free text stored in PostgreSQL, which refuses NUL characters.
Text = Annotated[str, Field(pattern=r"^[^\x00]*$")]


def _decimal(value: Any) -> Any:
    if isinstance(value, str):
        if not re.fullmatch(r"-?[0-9]{1,20}", value):
            raise ValueError("an id is a decimal integer")
        return int(value)
    return value


# An id in a path or a query, which arrives as text: "7" is 7; "true", "7.0", " 7" are not ids.
# (In a JSON body an id is `Id`, a JSON integer.)
IdParam = Annotated[int, BeforeValidator(_decimal), Strict(), Field(examples=[1])]
