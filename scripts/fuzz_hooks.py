"""Schemathesis hooks of scripts/fuzz (SCHEMATHESIS_HOOKS=fuzz_hooks): each request names a
channel its route allows (the route's `x-channels` in the OpenAPI), by its dev key, and an
actor, so that the fuzzing reaches the route's logic instead of stopping at 401/403.

A staff channel is preferred (it acts for anyone); a route only parents or teachers may call
is called as student or teacher 1 of the demo data. FUZZ_CHANNEL=<channel> sends every request
as that channel instead.
"""

import os
from typing import Any

import schemathesis

STAFF = [
    "fireman",
    "lp",
    "cc",
    "supply_demand",
    "tmk",
    "curriculum",
    "classroom",
    "intl",
    "marketing",
]


def caller(channels: list[str], case: Any) -> tuple[str, str]:
    """The channel, and the actor: a parent acts as the request's student, the teacher portal
    as its teacher (from the path or the body, else 1), staff as a user of their own."""
    forced = os.environ.get("FUZZ_CHANNEL")
    channel = forced or next((c for c in STAFF if c in channels), None)
    channel = channel or (channels[0] if channels else "fireman")
    if channel in ("parent_pc", "parent_h5", "teacher"):
        name = "teacher_id" if channel == "teacher" else "student_id"
        body = case.body if isinstance(case.body, dict) else {}
        actor = (case.path_parameters or {}).get(name) or body.get(name) or 1
        return channel, str(actor)[:64]
    return channel, f"fuzz-{channel}"


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: dict[str, Any]) -> None:
    raw = case.operation.definition.raw
    channel, actor = caller(list(raw.get("x-channels") or []), case)
    case.headers = {
        **(case.headers or {}),
        "Authorization": f"Bearer dev-{channel}",
        "X-Actor-Id": actor,
    }
