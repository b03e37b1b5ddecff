"""Types at the API's edge that refuse what the database would choke on, as a 422."""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the instant falls outside years 1-9999 in UTC") from exc


# ISO 8601 with an offset, kept in UTC (ARCHITECTURE rule 8).
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
# Free text stored in PostgreSQL, which refuses NUL characters.
Text = Annotated[str, Field(pattern=r"^[^\x00]*$")]
