"""Bad input to class requests (求课).

covers: LP-6, TCH-3, TCH-4
"""

import httpx

from store.db import Sessions
from tests.bad_input.checks import World, assert_error_shape
from tests.helpers import LP, snapshot


async def test_listing_requests_without_a_teacher_or_student_has_its_own_code(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    """Listing needs a teacher_id or a student_id. A client tells refusals apart by code, so
    this one is not the generic base code."""
    before = await snapshot(db)
    r = await api.get("/v1/class-requests", headers=LP)
    assert r.status_code == 422, r.text
    body = assert_error_shape(r)
    assert body["details"] == {"fields": ["teacher_id", "student_id"]}
    assert await snapshot(db) == before
    assert body["code"] == "filter_required", body
