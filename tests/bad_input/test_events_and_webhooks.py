"""Bad input to the event feed and webhooks: each refusal is its own 4xx code and changes
nothing; a webhook is only its own channel's business."""

from typing import Any

import httpx
import pytest

from domain.channels import Actor, Channel
from store import webhooks
from store.db import Sessions
from tests.bad_input.checks import World, refused
from tests.conftest import T0
from tests.helpers import CC, FIREMAN, LP, as_

GOOD = {"url": "https://hooks.example.com/yueke", "secret": "s" * 16, "types": ["class.booked"]}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({**GOOD, "url": "ftp://hooks.example.com/x"}, "webhook_url_refused"),
        ({**GOOD, "url": "file:///etc/passwd"}, "webhook_url_refused"),
        ({**GOOD, "url": "gopher://127.0.0.1:70/"}, "webhook_url_refused"),
        ({**GOOD, "url": "http://"}, "webhook_url_refused"),
        ({**GOOD, "url": "hooks.example.com/x"}, "webhook_url_refused"),
        ({**GOOD, "url": "http://hooks.example.com:99999/"}, "webhook_url_refused"),
        ({**GOOD, "url": "http://[::1/"}, "webhook_url_refused"),
        ({**GOOD, "url": "http://169.254.169.254/latest/meta-data/"}, "webhook_url_refused"),
        ({**GOOD, "url": "http://100.100.100.200/latest/meta-data/"}, "webhook_url_refused"),
        ({**GOOD, "url": "http://10.0.0.5/hooks"}, "webhook_url_refused"),
        ({**GOOD, "url": "http://192.168.1.1/hooks"}, "webhook_url_refused"),
        ({**GOOD, "url": "http://127.0.0.1:7233/"}, "webhook_url_refused"),
        ({**GOOD, "url": "http://0.0.0.0:5432/"}, "webhook_url_refused"),
        ({**GOOD, "url": "http://[::1]:8000/"}, "webhook_url_refused"),
        ({**GOOD, "url": "http://[::ffff:127.0.0.1]/"}, "webhook_url_refused"),
        ({**GOOD, "url": "http://[fe80::1]/"}, "webhook_url_refused"),
        ({**GOOD, "url": "http://224.0.0.1/"}, "webhook_url_refused"),
        ({**GOOD, "url": "https://x.example/" + "a" * 2000}, "malformed_body"),
        ({**GOOD, "url": "https://x.example/\x00"}, "malformed_body"),
        ({**GOOD, "secret": ""}, "malformed_body"),
        ({**GOOD, "secret": "short"}, "malformed_body"),
        ({**GOOD, "secret": None}, "malformed_body"),
        ({**GOOD, "types": []}, "malformed_body"),
        ({**GOOD, "types": ["class.exploded"]}, "unknown_event_type"),
        ({**GOOD, "types": ["class.booked", "Class.Booked"]}, "unknown_event_type"),
        ({**GOOD, "types": "class.booked"}, "malformed_body"),
        ({"url": GOOD["url"], "secret": GOOD["secret"]}, "malformed_body"),
    ],
)
async def test_bad_webhooks_are_refused(
    api: httpx.AsyncClient, db: Sessions, body: dict[str, Any], code: str
) -> None:
    await refused(api, db, "POST", "/v1/webhooks", 422, code, json=body, headers=LP)


@pytest.mark.parametrize(
    "url",
    [
        "https://hook-user:hunter2-secret@hooks.example.com/yueke",
        "https://hunter2-secret@hooks.example.com/yueke",
        "ftp://hook-user:hunter2-secret@hooks.example.com/",
        "http://hook-user:hunter2-secret@[::1/",
    ],
)
async def test_a_url_with_credentials_is_refused_without_echoing_them(
    api: httpx.AsyncClient, db: Sessions, url: str
) -> None:
    body = await refused(
        api,
        db,
        "POST",
        "/v1/webhooks",
        422,
        "webhook_url_refused",
        json={**GOOD, "url": url},
        headers=LP,
    )
    assert "hunter2" not in str(body)


@pytest.mark.parametrize("headers", [as_("parent_h5", 1), as_("parent_pc", 1), as_("teacher", 1)])
async def test_parents_and_the_teacher_portal_have_no_webhooks(
    api: httpx.AsyncClient, db: Sessions, headers: dict[str, str]
) -> None:
    await refused(
        api, db, "POST", "/v1/webhooks", 403, "forbidden_channel", json=GOOD, headers=headers
    )
    await refused(api, db, "GET", "/v1/webhooks", 403, "forbidden_channel", headers=headers)


async def test_a_channel_sees_and_changes_only_its_own_webhooks(
    api: httpx.AsyncClient, db: Sessions, world: World
) -> None:
    async with db.begin() as session:
        hook = await webhooks.create(
            session,
            url=GOOD["url"],
            secret=GOOD["secret"],
            types=["class.booked"],
            actor=Actor(channel=Channel.lp, id="lp-1"),
            now=T0,
        )
    r = await api.get(f"/v1/webhooks/{hook.id}", headers=LP)
    assert r.status_code == 200 and "secret" not in r.json()
    for method, url in (
        ("GET", f"/v1/webhooks/{hook.id}"),
        ("POST", f"/v1/webhooks/{hook.id}/pause"),
        ("POST", f"/v1/webhooks/{hook.id}/resume"),
        ("DELETE", f"/v1/webhooks/{hook.id}"),
    ):
        await refused(api, db, method, url, 404, "webhook_not_found", headers=CC)
    r = await api.get("/v1/webhooks", headers=CC)
    assert r.status_code == 200 and r.json() == []
    for method, url in (("GET", "/v1/webhooks/999999"), ("POST", "/v1/webhooks/x/pause")):
        await refused(
            api,
            db,
            method,
            url,
            404 if "999" in url else 422,
            "webhook_not_found" if "999" in url else "malformed_body",
            headers=FIREMAN,
        )


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"after": "1"}, "bad_cursor"),
        ({"after": "1-"}, "bad_cursor"),
        ({"after": "-1-2"}, "bad_cursor"),
        ({"after": "１-２"}, "bad_cursor"),
        ({"after": "9223372036854775808-1"}, "bad_cursor"),
        ({"after": "1-" + "9" * 40}, "bad_cursor"),
        ({"after": "1-" + "9" * 60}, "malformed_body"),
        ({"types": "class.booked,timeslot.exploded"}, "unknown_event_type"),
        ({"types": "money"}, "unknown_event_type"),
        ({"limit": "0"}, "malformed_body"),
        ({"limit": "1001"}, "malformed_body"),
        ({"limit": "ten"}, "malformed_body"),
    ],
)
async def test_bad_feed_reads_are_refused(
    api: httpx.AsyncClient, db: Sessions, params: dict[str, str], code: str
) -> None:
    await refused(api, db, "GET", "/v1/events", 422, code, params=params, headers=FIREMAN)
