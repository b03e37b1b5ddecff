"""/metrics answers in Prometheus' format and its counters move with what the API did (a
booking, a cancel with its refund, a refusal by its code); /docs and /redoc load nothing from
outside the API, and the OpenAPI document names the channel key as a security scheme, the
X-Actor-Id header, and examples a caller can send as they are.

covers: PAR-1, PAR-3
"""

import re
from datetime import datetime, timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import T0
from tests.helpers import as_, book, open_slots, student, teacher

DAY = timedelta(days=1)


async def scrape(api: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by name and labels."""
    r = await api.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }


def moved(
    before: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    after: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    name: str,
    **labels: str,
) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_metrics_count_requests_bookings_cancels_and_refusals(
    api: httpx.AsyncClient,
) -> None:
    t = await teacher(api)
    s = await student(api, credits={"major": 2})
    first, second = await open_slots(api, t, T0 + 3 * DAY, T0 + 3 * DAY + timedelta(hours=1))
    before = await scrape(api)

    booked = await book(api, s, first)
    assert booked.status_code == 201, booked.text
    again = await book(api, s, first)
    assert again.json()["code"] == "slot_already_booked"
    keyed = await api.post(
        "/v1/classes",
        json={"student_id": s, "timeslot_id": second, "course_type": "major"},
        headers=as_("lp", "lp-7", **{"Idempotency-Key": "metrics-1"}),
    )
    assert keyed.status_code == 201, keyed.text
    replayed = await api.post(
        "/v1/classes",
        json={"student_id": s, "timeslot_id": second, "course_type": "major"},
        headers=as_("lp", "lp-7", **{"Idempotency-Key": "metrics-1"}),
    )
    assert replayed.json() == keyed.json()
    cancelled = await api.post(
        f"/v1/classes/{booked.json()['id']}/cancel", json={}, headers=as_("parent_h5", s)
    )
    assert cancelled.json()["refunded"] is True
    after = await scrape(api)

    # A booking per channel, counted once although its Idempotency-Key was replayed.
    assert (
        moved(before, after, "yueke_classes_booked_total", channel="parent_h5", course_type="major")
        == 1
    )
    assert (
        moved(before, after, "yueke_classes_booked_total", channel="lp", course_type="major") == 1
    )
    assert (
        moved(before, after, "yueke_classes_cancelled_total", channel="parent_h5", refunded="true")
        == 1
    )
    assert moved(before, after, "yueke_refunds_total", channel="parent_h5", asset="credit") == 1
    assert (
        moved(before, after, "yueke_refusals_total", code="slot_already_booked", status="409") == 1
    )
    # Requests by route template, not by the path with its id.
    route = {"method": "POST", "handler": "/v1/classes"}
    assert moved(before, after, "http_requests_total", **route, status="201") == 3
    assert moved(before, after, "http_requests_total", **route, status="409") == 1
    cancel = {"method": "POST", "handler": "/v1/classes/{class_id}/cancel"}
    assert moved(before, after, "http_requests_total", **cancel, status="200") == 1
    assert moved(before, after, "http_request_duration_seconds_count", **route) == 4


async def test_metrics_count_refusals_before_the_routes(api: httpx.AsyncClient) -> None:
    """A refusal of the caller's identity or of the edge counts by its code too."""
    before = await scrape(api)
    r = await api.get("/v1/classes/1", headers={"Authorization": "Bearer nope", "X-Actor-Id": "1"})
    assert r.status_code == 401
    r = await api.post(
        "/v1/classes",
        content=b"{}",
        headers={"Authorization": "Bearer a", "X-Actor-Id": "1", "x-actor-id": "2"},
    )
    assert r.json()["code"] == "duplicate_header"
    after = await scrape(api)
    assert moved(before, after, "yueke_refusals_total", code="unauthenticated", status="401") == 1
    assert moved(before, after, "yueke_refusals_total", code="duplicate_header", status="400") == 1


LOCAL = re.compile(r"""(?:src|href)=["'](/[^"']*)["']""")
ANY_URL = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


async def test_docs_load_only_local_assets(api: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        r = await api.get(page)
        assert r.status_code == 200
        assert "cdn" not in r.text.lower()
        urls = ANY_URL.findall(r.text)
        assert urls, page
        assert urls == LOCAL.findall(r.text), f"{page} references a URL of another host: {urls}"
        for url in urls:
            asset = await api.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url
        assert "url: '/openapi.json'" in r.text or 'spec-url="/openapi.json"' in r.text


async def test_openapi_names_the_channel_key_the_actor_and_real_examples(
    api: httpx.AsyncClient,
) -> None:
    spec = (await api.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["ChannelKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["ChannelKey"]["description"],
    }
    book_class = spec["paths"]["/v1/classes"]["post"]
    assert book_class["security"] == [{"ChannelKey": []}]
    headers = {p["name"]: p for p in book_class["parameters"] if p["in"] == "header"}
    assert headers["x-actor-id"]["description"].startswith("The acting user")
    assert "authorization" not in headers  # it is the security scheme
    request = spec["components"]["schemas"]["NewRequest"]["properties"]
    assert request["student_id"]["examples"] == [1]
    [start] = request["start_at"]["examples"]
    on_grid = datetime.fromisoformat(start)
    assert on_grid.minute in (0, 30) and on_grid.second == 0 and on_grid > T0
    assert spec["paths"]["/v1/classes/{class_id}"]["get"]["parameters"][0]["schema"][
        "examples"
    ] == [1]
    # The example body books as it is: demo student 1, timeslot 1, a course type that exists.
    assert spec["components"]["schemas"]["CourseType"]["enum"][0] == "major"
    # The scheme changes no answer: no key is still our 401 unauthenticated.
    r = await api.get("/v1/classes/1", headers={"X-Actor-Id": "1"})
    assert (r.status_code, r.json()["code"]) == (401, "unauthenticated")
