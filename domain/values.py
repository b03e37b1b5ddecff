"""Values the API's bodies and the flows' payloads share, refused when they cannot mean what the
caller meant: ids that are not integers, time zones that do not exist, local times with an
offset that would be dropped."""

import re
from datetime import time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BeforeValidator, Field, Strict, WithJsonSchema

# An id in a JSON body: a JSON integer. "1", true and 1.0 are not student 1. (The example is
# the demo's student 1, teacher 1, timeslot 1.)
Id = Annotated[int, Strict(), Field(examples=[1])]


def _iana(name: str) -> str:
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone, such as Asia/Shanghai") from exc
    return name


# An IANA time zone name (the tz database), e.g. "Asia/Shanghai".
TimeZone = Annotated[
    str,
    Field(min_length=1, max_length=64, examples=["Asia/Shanghai"]),
    AfterValidator(_iana),
]

_HH_MM_SS = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"


def _local_text(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(_HH_MM_SS, value):
        raise ValueError("a local time is HH:MM or HH:MM:SS, with no offset")
    if not isinstance(value, str | time):
        raise ValueError("a local time is a string HH:MM or HH:MM:SS")
    return value


def _naive(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a local time takes no offset: it is read in the business time zone")
    return value


# A wall-clock time in the business time zone (Asia/Shanghai): "18:00" or "18:00:00". An offset
# ("18:00-05:00", "18:00Z") is refused rather than dropped.
LocalTime = Annotated[
    time,
    BeforeValidator(_local_text),
    AfterValidator(_naive),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _HH_MM_SS,
            "examples": ["18:00", "00:00:00"],
            "description": "local time (Asia/Shanghai), HH:MM or HH:MM:SS, no offset",
        }
    ),
]
