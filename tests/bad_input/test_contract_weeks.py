"""Bad input on the contract weeks' routes (TCH-6, SD-7): each refusal is its own status and
code, before any flow is asked, and changes nothing.

covers: TCH-6, SD-7
"""

import httpx
import pytest

from store.db import Sessions
from tests.bad_input.checks import JSON, World, refused
from tests.helpers import LP, as_

WEEK = "2030-01-14"


@pytest.mark.parametrize("verb", ["agree", "decline"])
async def test_answers_for_weeks_that_cannot_be_are_refused(
    api: httpx.AsyncClient, db: Sessions, world: World, verb: str
) -> None:
    me = as_("teacher", world.teacher)
    for url, status, code, kwargs in (
        (f"/v1/contracts/424242/weeks/{WEEK}/{verb}", 404, "contract_not_found", {"json": {}}),
        ("/v1/contracts/1/weeks/monday/" + verb, 422, "malformed_body", {"json": {}}),
        (f"/v1/contracts/1/weeks/2030-02-30/{verb}", 422, "malformed_body", {"json": {}}),
        (f"/v1/contracts/x/weeks/{WEEK}/{verb}", 422, "malformed_body", {"json": {}}),
        (f"/v1/contracts/1/weeks/{WEEK}/{verb}", 422, "malformed_body", {"json": []}),
        (
            f"/v1/contracts/1/weeks/{WEEK}/{verb}",
            422,
            "malformed_body",
            {"json": {"reason": "x" * 501}},
        ),
        (
            f"/v1/contracts/1/weeks/{WEEK}/{verb}",
            422,
            "malformed_body",
            {"content": b"{", "headers": {**me, **JSON}},
        ),
    ):
        kwargs.setdefault("headers", me)
        await refused(api, db, "POST", url, status, code, **kwargs)


async def test_listing_weeks_awaiting_is_refused_for_unknown_or_other_teachers(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    await refused(
        api, db, "GET", "/v1/teachers/999999/contract-weeks", 404, "teacher_not_found", headers=LP
    )
    await refused(
        api, db, "GET", "/v1/teachers/x/contract-weeks", 422, "malformed_body", headers=LP
    )
    await refused(
        api,
        db,
        "GET",
        f"/v1/teachers/{world.other_teacher}/contract-weeks",
        403,
        "forbidden_actor",
        headers=as_("teacher", world.teacher),
    )
    r = await api.get(
        f"/v1/teachers/{world.teacher}/contract-weeks", headers=as_("teacher", world.teacher)
    )
    assert (r.status_code, r.json()) == (200, [])
