"""Who may do what: every route of the app × every channel, against the ALLOWED table; and the
actor checks (a parent acts only for their own student, the teacher portal only for its own
teacher). A refusal is a 403 that changes nothing.

covers: TCH-1, TCH-2, TCH-3, TCH-4, TCH-5, TCH-6, FM-2, FM-6, PAR-1, PAR-3, H5-1, H5-5, LP-2, LP-3,
LP-6, LP-8, TMK-2, TMK-6, CC-2, CC-6, INT-1, TCH-7, CUR-2, CLS-1, PAR-2, H5-2
"""

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from starlette.routing import Mount, Route

from api.app import create_app
from domain.channels import ALLOWED, PARENTS, Channel, Operation
from store.db import Sessions
from tests.conftest import T0, Clock
from tests.helpers import CC, LP, as_, client_showing_500s, open_slots, snapshot, student, teacher
from yueke.settings import Settings, dev_channel_keys

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
CHANNELS = list(Channel)

# Every route of the app and the operation it performs (by value, so that a renamed operation
# fails these tests, not the import). A route missing here fails
# test_every_route_is_in_the_matrix: add it, and a request for it to REQUESTS if it can run
# without Temporal.
ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/v1/teachers"): "register_teacher",
    ("GET", "/v1/teachers/{teacher_id}"): "read_teacher",
    ("POST", "/v1/students"): "register_student",
    ("GET", "/v1/students/{student_id}"): "read_student",
    ("POST", "/v1/teachers/{teacher_id}/timeslots"): "open_timeslots",
    ("POST", "/v1/teachers/{teacher_id}/timeslots/close"): "close_timeslots",
    ("GET", "/v1/timeslots"): "read_availability",
    ("POST", "/v1/classes"): "book_class",
    ("POST", "/v1/classes/batch"): "book_classes_batch",
    ("POST", "/v1/classes/{class_id}/cancel"): "cancel_class",
    ("GET", "/v1/classes/{class_id}"): "read_class",
    ("GET", "/v1/students/{student_id}/classes"): "read_student",
    ("GET", "/v1/classes/{class_id}/audit"): "read_audit",
    ("GET", "/v1/classes/{class_id}/history"): "read_audit",
    ("GET", "/v1/teachers/{teacher_id}/penalties"): "read_teacher_penalties",
    ("GET", "/v1/timeslots/{timeslot_id}/audit"): "read_audit",
    ("GET", "/v1/students/{student_id}/balances"): "read_balances",
    ("GET", "/v1/students/{student_id}/ledger"): "read_balances",
    ("POST", "/v1/students/{student_id}/grants"): "grant",
    ("POST", "/v1/students/{student_id}/coupons"): "grant",
    ("POST", "/v1/class-requests"): "request_class",
    ("POST", "/v1/class-requests/batch"): "request_classes_batch",
    ("POST", "/v1/class-requests/{request_id}/approve"): "answer_request",
    ("POST", "/v1/class-requests/{request_id}/reject"): "answer_request",
    ("POST", "/v1/class-requests/{request_id}/withdraw"): "withdraw_request",
    ("GET", "/v1/class-requests/{request_id}"): "read_requests",
    ("GET", "/v1/class-requests"): "read_requests",
    ("POST", "/v1/classes/{class_id}/teacher-cancel"): "teacher_cancel",
    ("GET", "/v1/teacher-cancels/{class_id}"): "read_class",
    ("POST", "/v1/teacher-cancels/{class_id}/extend"): "manage_hold",
    ("POST", "/v1/teacher-cancels/{class_id}/end"): "manage_hold",
    ("GET", "/v1/flows/{flow_id}"): "read_flow",
    # Contracts, weekly booking runs, exclusive teachers.
    ("POST", "/v1/contracts"): "propose_contract",
    ("POST", "/v1/contracts/{contract_id}/agree"): "answer_contract",
    ("POST", "/v1/contracts/{contract_id}/decline"): "answer_contract",
    ("POST", "/v1/contracts/{contract_id}/terminate"): "terminate_contract",
    ("POST", "/v1/contracts/{contract_id}/make-up"): "make_up_booking",
    ("GET", "/v1/contracts/{contract_id}"): "read_contract",
    ("POST", "/v1/contracts/{contract_id}/weeks/{week}/agree"): "answer_contract",
    ("POST", "/v1/contracts/{contract_id}/weeks/{week}/decline"): "answer_contract",
    ("GET", "/v1/teachers/{teacher_id}/contract-weeks"): "read_contract_weeks",
    ("PUT", "/v1/students/{student_id}/auto-booking-rule"): "save_booking_rules",
    ("GET", "/v1/students/{student_id}/auto-booking-rule"): "read_booking_rules",
    ("PUT", "/v1/students/{student_id}/exclusive-teacher"): "set_exclusive_teacher",
    ("POST", "/v1/booking-runs"): "run_weekly_booking",
    ("GET", "/v1/booking-runs/{run_id}"): "read_booking_runs",
    ("GET", "/v1/booking-runs/{run_id}/results"): "read_booking_runs",
    # Finish and labels, dino-home, make-up, learning progress.
    ("POST", "/v1/classes/{class_id}/finish"): "finish_class",
    ("POST", "/v1/classes/{class_id}/undo-finish"): "undo_finish",
    ("POST", "/v1/classes/{class_id}/label"): "adjust_label",
    ("POST", "/v1/dino-home/priority"): "dino_home_priority",
    ("POST", "/v1/students/{student_id}/exclusive-make-up"): "make_up_booking",
    ("POST", "/v1/learning-progress"): "create_learning_progress",
    ("GET", "/v1/students/{student_id}/learning-progress"): "read_student",
    ("POST", "/v1/advanced-classes"): "book_advanced_pair",
    ("POST", "/v1/students/{student_id}/courses"): "start_course",
    ("GET", "/v1/students/{student_id}/exclusive-teacher"): "read_exclusive_teacher",
    ("POST", "/v1/teachers/{teacher_id}/timeslots/week-pattern"): "open_timeslots",
    # Over-booking.
    ("POST", "/v1/overbooked-classes"): "book_overbooked",
    ("POST", "/v1/overbooked-classes/real-booking"): "register_and_book_trial",
    ("POST", "/v1/instant-classes"): "book_instant_class",
    ("POST", "/v1/classroom/classes/{class_id}/entered"): "enter_classroom",
    ("GET", "/v1/overbooked-classes/{class_id}"): "read_class",
    ("POST", "/v1/classes/{class_id}/swap-teacher"): "swap_teacher",
    ("POST", "/v1/teacher-reservations"): "reserve_teachers",
    # Force-book, change teacher, change student.
    ("POST", "/v1/classes/force-book"): "force_book",
    ("POST", "/v1/classes/{class_id}/change-teacher"): "change_teacher",
    ("POST", "/v1/classes/{class_id}/change-student"): "change_student",
    ("POST", "/v1/classes/{class_id}/fake-cancel"): "fake_cancel",
    # Product-directed slots, energy-stone campaigns.
    ("POST", "/v1/teachers/{teacher_id}/timeslots/reserve-for-product"): "direct_product_slots",
    ("POST", "/v1/teachers/{teacher_id}/timeslots/release-to-general"): "direct_product_slots",
    ("POST", "/v1/stone-campaigns"): "manage_stone_campaigns",
    ("POST", "/v1/stone-campaigns/{campaign_id}/end"): "manage_stone_campaigns",
    ("GET", "/v1/stone-campaigns"): "read_stone_campaigns",
    # Open classes and replays.
    ("POST", "/v1/open-classes"): "create_open_class",
    ("GET", "/v1/open-classes"): "read_open_classes",
    ("GET", "/v1/open-classes/{open_class_id}"): "read_open_classes",
    ("PATCH", "/v1/open-classes/{open_class_id}"): "manage_open_class",
    ("POST", "/v1/open-classes/{open_class_id}/list"): "manage_open_class",
    ("POST", "/v1/open-classes/{open_class_id}/delist"): "manage_open_class",
    ("PUT", "/v1/open-classes/{open_class_id}/replay-price"): "manage_open_class",
    ("POST", "/v1/open-classes/{open_class_id}/seats"): "book_open_class",
    ("POST", "/v1/open-classes/{open_class_id}/replays"): "buy_replay",
    ("GET", "/v1/students/{student_id}/replays"): "read_replays",
    # The event feed and webhooks.
    ("GET", "/v1/events"): "read_events",
    ("POST", "/v1/webhooks"): "manage_webhooks",
    ("GET", "/v1/webhooks"): "manage_webhooks",
    ("GET", "/v1/webhooks/{webhook_id}"): "manage_webhooks",
    ("POST", "/v1/webhooks/{webhook_id}/pause"): "manage_webhooks",
    ("POST", "/v1/webhooks/{webhook_id}/resume"): "manage_webhooks",
    ("DELETE", "/v1/webhooks/{webhook_id}"): "manage_webhooks",
}
# Routes without a channel key, on purpose.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/metrics"),
}


def operation(route: tuple[str, str]) -> Operation:
    return Operation(ROUTES[route])


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Temporal deliberately unreachable (it fails at once): these tests are about who may
    call, and no request here should need a workflow."""
    return Settings(
        database_url=database_url,
        channel_keys=dev_channel_keys(),
        db_pool_size=20,
        temporal_address="127.0.0.1:1",
    )


@pytest.fixture
async def api(settings: Settings, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    async with client_showing_500s(settings, clock) as client:
        yield client


def walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route, through included routers and mounts."""
    for route in routes:
        if isinstance(route, Route):
            for method in route.methods or ():
                if method != "HEAD":
                    yield method, prefix + route.path
        elif (inner := getattr(route, "original_router", None)) is not None:
            context = getattr(route, "include_context", None)
            yield from walk(inner.routes, prefix + getattr(context, "prefix", ""))
        elif isinstance(route, Mount):
            yield from walk(route.routes, prefix + route.path)
        else:
            raise AssertionError(f"a kind of route this test cannot read: {route!r}")


def test_every_route_is_in_the_matrix(settings: Settings) -> None:
    app = create_app(settings)
    routes = set(walk(app.routes))
    documented = {
        (method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item
    }
    assert documented <= routes, "the walk over app.routes missed routes the OpenAPI lists"
    assert routes - ROUTES.keys() - PUBLIC == set(), "routes missing from ROUTES or PUBLIC"
    assert ROUTES.keys() - routes == set(), "ROUTES names routes the app does not have"
    assert {operation(r) for r in ROUTES} == set(Operation), "an operation has no route"
    assert set(ALLOWED) == set(Operation), "an operation has no ALLOWED entry"


def test_routes_document_the_channels_they_allow(settings: Settings) -> None:
    paths = create_app(settings).openapi()["paths"]
    for (method, path), op in ROUTES.items():
        documented = paths[path][method.lower()].get("x-channels")
        assert documented == sorted(c.value for c in ALLOWED[Operation(op)]), (method, path)


@dataclass
class World:
    teacher: int
    student: int
    bookable: list[int]  # open slots, one per channel
    closable: list[int]  # open slots, one per channel
    classes: list[int]  # the student's booked classes, one per channel
    fresh: list[str]  # starts with no slot yet, one per channel
    open_classes: list[int]  # listed open classes at distinct starts, one per channel

    def actor(self, channel: Channel) -> str:
        """The user a channel acts as: the student for parents, the teacher for the portal."""
        if channel in PARENTS:
            return str(self.student)
        if channel is Channel.teacher:
            return str(self.teacher)
        return "staff-1"


async def make_world(api: httpx.AsyncClient, *, open_classes: bool = False) -> World:
    """`open_classes`: with one listed open class per channel (for the routes on them)."""
    n = len(CHANNELS)
    t = await teacher(api)
    s = await student(api, credits={"major": 100, "open": 100})
    starts = [T0 + (2 + day) * DAY + i * HOUR for day in range(3) for i in range(n)]
    slots = await open_slots(api, t, *starts)
    bookable, for_classes, closable = slots[:n], slots[n : 2 * n], slots[2 * n :]
    r = await api.post(
        "/v1/classes/batch",
        json={"student_id": s, "timeslot_ids": for_classes, "course_type": "major"},
        headers=LP,
    )
    assert r.status_code == 201, r.text
    classes = [c["id"] for c in r.json()["classes"]]
    fresh = [(T0 + 6 * DAY + i * HOUR).isoformat() for i in range(n)]
    made = []
    if open_classes:
        for slot in await open_slots(api, t, *(T0 + 5 * DAY + i * HOUR for i in range(n))):
            body = {"timeslot_id": slot, "title": "Matrix", "capacity": 5}
            r = await api.post("/v1/open-classes", json=body, headers=as_("curriculum"))
            assert r.status_code == 201, r.text
            r = await api.post(f"/v1/open-classes/{r.json()['id']}/list", headers=as_("curriculum"))
            assert r.status_code == 200, r.text
            made.append(int(r.json()["id"]))
    return World(t, s, bookable, closable, classes, fresh, made)


Call = tuple[str, str, dict[str, Any]]
# For each route, the request channel number i makes: valid, so an allowed channel succeeds.
REQUESTS: dict[tuple[str, str], Callable[[World, int], Call]] = {
    ("POST", "/v1/teachers"): lambda w, i: (
        "POST",
        "/v1/teachers",
        {"json": {"name": "T", "kind": "chinese", "course_types": ["advanced"]}},
    ),
    ("GET", "/v1/teachers/{teacher_id}"): lambda w, i: ("GET", f"/v1/teachers/{w.teacher}", {}),
    ("POST", "/v1/students"): lambda w, i: ("POST", "/v1/students", {"json": {"name": "S"}}),
    ("GET", "/v1/students/{student_id}"): lambda w, i: ("GET", f"/v1/students/{w.student}", {}),
    ("POST", "/v1/teachers/{teacher_id}/timeslots"): lambda w, i: (
        "POST",
        f"/v1/teachers/{w.teacher}/timeslots",
        {"json": {"start_at": [w.fresh[i]]}},
    ),
    ("POST", "/v1/teachers/{teacher_id}/timeslots/close"): lambda w, i: (
        "POST",
        f"/v1/teachers/{w.teacher}/timeslots/close",
        {"json": {"timeslot_ids": [w.closable[i]]}},
    ),
    ("GET", "/v1/timeslots"): lambda w, i: (
        "GET",
        "/v1/timeslots",
        {"params": {"start_from": T0.isoformat(), "start_to": (T0 + 9 * DAY).isoformat()}},
    ),
    ("POST", "/v1/classes"): lambda w, i: (
        "POST",
        "/v1/classes",
        {"json": {"student_id": w.student, "timeslot_id": w.bookable[i], "course_type": "major"}},
    ),
    ("POST", "/v1/classes/batch"): lambda w, i: (
        "POST",
        "/v1/classes/batch",
        {
            "json": {
                "student_id": w.student,
                "timeslot_ids": [w.bookable[i]],
                "course_type": "major",
            }
        },
    ),
    ("POST", "/v1/classes/{class_id}/cancel"): lambda w, i: (
        "POST",
        f"/v1/classes/{w.classes[i]}/cancel",
        {"json": {"reason": "matrix"}},
    ),
    ("GET", "/v1/classes/{class_id}"): lambda w, i: ("GET", f"/v1/classes/{w.classes[i]}", {}),
    ("GET", "/v1/students/{student_id}/classes"): lambda w, i: (
        "GET",
        f"/v1/students/{w.student}/classes",
        {},
    ),
    ("GET", "/v1/classes/{class_id}/audit"): lambda w, i: (
        "GET",
        f"/v1/classes/{w.classes[i]}/audit",
        {},
    ),
    ("GET", "/v1/classes/{class_id}/history"): lambda w, i: (
        "GET",
        f"/v1/classes/{w.classes[i]}/history",
        {},
    ),
    ("GET", "/v1/teachers/{teacher_id}/penalties"): lambda w, i: (
        "GET",
        f"/v1/teachers/{w.teacher}/penalties",
        {},
    ),
    ("GET", "/v1/teachers/{teacher_id}/contract-weeks"): lambda w, i: (
        "GET",
        f"/v1/teachers/{w.teacher}/contract-weeks",
        {},
    ),
    ("GET", "/v1/timeslots/{timeslot_id}/audit"): lambda w, i: (
        "GET",
        f"/v1/timeslots/{w.closable[i]}/audit",
        {},
    ),
    ("GET", "/v1/students/{student_id}/balances"): lambda w, i: (
        "GET",
        f"/v1/students/{w.student}/balances",
        {},
    ),
    ("GET", "/v1/students/{student_id}/ledger"): lambda w, i: (
        "GET",
        f"/v1/students/{w.student}/ledger",
        {},
    ),
    ("POST", "/v1/students/{student_id}/grants"): lambda w, i: (
        "POST",
        f"/v1/students/{w.student}/grants",
        {"json": {"asset": "credit", "amount": 1, "course_type": "major"}},
    ),
    ("GET", "/v1/class-requests"): lambda w, i: (
        "GET",
        "/v1/class-requests",
        {"params": {"teacher_id": w.teacher, "student_id": w.student}},
    ),
    ("GET", "/v1/students/{student_id}/learning-progress"): lambda w, i: (
        "GET",
        f"/v1/students/{w.student}/learning-progress",
        {},
    ),
    ("GET", "/v1/students/{student_id}/exclusive-teacher"): lambda w, i: (
        "GET",
        f"/v1/students/{w.student}/exclusive-teacher",
        {},
    ),
    ("POST", "/v1/classes/force-book"): lambda w, i: (
        "POST",
        "/v1/classes/force-book",
        {
            "json": {
                "student_id": w.student,
                "teacher_id": w.teacher,
                "start_at": w.fresh[i],
                "course_type": "major",
                "reason": "matrix",
            }
        },
    ),
    ("POST", "/v1/students/{student_id}/coupons"): lambda w, i: (
        "POST",
        f"/v1/students/{w.student}/coupons",
        {"json": {"course_type": "major", "expires_at": (T0 + 10 * DAY).isoformat()}},
    ),
    ("POST", "/v1/teachers/{teacher_id}/timeslots/reserve-for-product"): lambda w, i: (
        "POST",
        f"/v1/teachers/{w.teacher}/timeslots/reserve-for-product",
        {"json": {"product": "dual_teacher", "timeslot_ids": [w.closable[i]]}},
    ),
    ("POST", "/v1/stone-campaigns"): lambda w, i: (
        "POST",
        "/v1/stone-campaigns",
        {
            "json": {
                "course_type": "major",
                "price": 80,
                "starts_at": (T0 + i * DAY).isoformat(),
                "ends_at": (T0 + (i + 1) * DAY).isoformat(),
            }
        },
    ),
    ("GET", "/v1/stone-campaigns"): lambda w, i: ("GET", "/v1/stone-campaigns", {}),
    ("POST", "/v1/open-classes"): lambda w, i: (
        "POST",
        "/v1/open-classes",
        {"json": {"timeslot_id": w.bookable[i], "title": "Matrix", "capacity": 3}},
    ),
    ("GET", "/v1/open-classes"): lambda w, i: ("GET", "/v1/open-classes", {}),
    ("GET", "/v1/open-classes/{open_class_id}"): lambda w, i: (
        "GET",
        f"/v1/open-classes/{w.open_classes[i]}",
        {},
    ),
    ("PATCH", "/v1/open-classes/{open_class_id}"): lambda w, i: (
        "PATCH",
        f"/v1/open-classes/{w.open_classes[i]}",
        {"json": {"capacity": 9}},
    ),
    ("POST", "/v1/open-classes/{open_class_id}/list"): lambda w, i: (
        "POST",
        f"/v1/open-classes/{w.open_classes[i]}/list",
        {},
    ),
    ("POST", "/v1/open-classes/{open_class_id}/delist"): lambda w, i: (
        "POST",
        f"/v1/open-classes/{w.open_classes[i]}/delist",
        {},
    ),
    ("PUT", "/v1/open-classes/{open_class_id}/replay-price"): lambda w, i: (
        "PUT",
        f"/v1/open-classes/{w.open_classes[i]}/replay-price",
        {"json": {"asset": "stones", "amount": 10}},
    ),
    ("POST", "/v1/open-classes/{open_class_id}/seats"): lambda w, i: (
        "POST",
        f"/v1/open-classes/{w.open_classes[i]}/seats",
        {"json": {"student_id": w.student}},
    ),
    ("GET", "/v1/students/{student_id}/replays"): lambda w, i: (
        "GET",
        f"/v1/students/{w.student}/replays",
        {},
    ),
    ("GET", "/v1/events"): lambda w, i: ("GET", "/v1/events", {"params": {"limit": 5}}),
    ("GET", "/v1/webhooks"): lambda w, i: ("GET", "/v1/webhooks", {}),
}


def error_code(r: httpx.Response) -> str | None:
    try:
        body = r.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def gated(paths: dict[str, Any], route: tuple[str, str]) -> tuple[Call, bool]:
    """A request for a route that needs a workflow: it passes authentication, so the channel
    check decides; then, where the route has an integer path parameter or a body, it stops at
    validation (an id "x", a body that is a list), before anything would run."""
    method, path = route
    spec = paths[path][method.lower()]
    url, stops = path, False
    for param in spec.get("parameters", []):
        if param["in"] == "path":
            integer = param["schema"].get("type") == "integer"
            url = url.replace("{" + param["name"] + "}", "x" if integer else "probe-1")
            stops = stops or integer
    kwargs: dict[str, Any] = {}
    if "requestBody" in spec:
        kwargs["json"] = []
        stops = True
    return (method, url, kwargs), stops


def test_routes_without_a_request_are_gated(settings: Settings) -> None:
    """Only routes that cannot run without Temporal go without a real request in the matrix."""
    paths = create_app(settings).openapi()["paths"]
    ungated = [r for r in ROUTES.keys() - REQUESTS.keys() if not gated(paths, r)[1]]
    assert ungated == [("GET", "/v1/flows/{flow_id}")]
    assert REQUESTS.keys() <= ROUTES.keys()


@pytest.mark.parametrize("route", list(ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
async def test_channel_matrix(
    api: httpx.AsyncClient, db: Sessions, settings: Settings, route: tuple[str, str]
) -> None:
    """Every channel on this route: an allowed one gets its answer (a 2xx to a real request;
    past the channel check to validation for a gated one; never 401/403); any other gets 403
    forbidden_channel and nothing changes."""
    op = operation(route)
    world = await make_world(api, open_classes=route[1].startswith("/v1/open-classes/"))
    paths = create_app(settings).openapi()["paths"]
    outcomes: dict[str, tuple[int, str | None]] = {}
    wrong: list[str] = []
    for i, channel in enumerate(CHANNELS):
        if route in REQUESTS:
            (method, url, kwargs), stops = REQUESTS[route](world, i), False
        else:
            (method, url, kwargs), stops = gated(paths, route)
        headers = as_(channel.value, world.actor(channel))
        before = await snapshot(db)
        r = await api.request(method, url, headers=headers, **kwargs)
        code = error_code(r)
        outcomes[channel.value] = (r.status_code, code)
        said = f"{channel.value}: {r.status_code} {r.text[:300]}"
        if channel in ALLOWED[op]:
            if route in REQUESTS and not 200 <= r.status_code < 300:
                wrong.append(f"allowed, but {said}")
            elif stops and (r.status_code, code) != (422, "malformed_body"):
                wrong.append(f"allowed, should stop at validation, but {said}")
            elif r.status_code in (401, 403):
                wrong.append(f"allowed, but {said}")
        else:
            if (r.status_code, code) != (403, "forbidden_channel"):
                wrong.append(f"not allowed, but {said}")
            elif r.json()["details"] != {"channel": channel.value, "operation": op.value}:
                wrong.append(f"{channel.value}: details {r.json()['details']}")
            if await snapshot(db) != before:
                wrong.append(f"{channel.value} was refused but the database changed")
    assert wrong == [], (op.value, outcomes)
    refused = {c for c, (status, code) in outcomes.items() if code == "forbidden_channel"}
    assert refused == {c.value for c in Channel} - {c.value for c in ALLOWED[op]}


async def test_a_channel_is_refused_before_its_body_is_looked_at(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """Forbidden wins over malformed: a channel learns nothing about an operation it may not
    call."""
    before = await snapshot(db)
    for method, url in (
        ("POST", "/v1/classes"),
        ("POST", "/v1/classes/batch"),
        ("POST", "/v1/teachers"),
        ("POST", "/v1/students/1/grants"),
    ):
        r = await api.request(method, url, json={"nonsense": True}, headers=as_("teacher", 1))
        assert (r.status_code, r.json()["code"]) == (403, "forbidden_channel"), (url, r.text)
    assert await snapshot(db) == before


# --- actors: parents act for their own student, the teacher portal for its own teacher --------


@dataclass
class Two:
    teacher: int
    other_teacher: int
    student: int
    other_student: int
    their_class: int  # the other student's class, with the other teacher
    their_slot: int  # the other teacher's open slot
    own_slot: int  # the teacher's open slot


async def two_of_each(api: httpx.AsyncClient) -> Two:
    t, u = await teacher(api), await teacher(api)
    s, o = await student(api, credits={"major": 5}), await student(api, credits={"major": 5})
    their_booked, their_open = await open_slots(api, u, T0 + 2 * DAY, T0 + 3 * DAY)
    [own] = await open_slots(api, t, T0 + 4 * DAY)
    r = await api.post(
        "/v1/classes",
        json={"student_id": o, "timeslot_id": their_booked, "course_type": "major"},
        headers=CC,
    )
    assert r.status_code == 201, r.text
    return Two(t, u, s, o, r.json()["id"], their_open, own)


async def assert_forbidden_actor(
    api: httpx.AsyncClient, db: Sessions, method: str, url: str, headers: dict[str, str], **kw: Any
) -> None:
    before = await snapshot(db)
    r = await api.request(method, url, headers=headers, **kw)
    assert (r.status_code, error_code(r)) == (403, "forbidden_actor"), (method, url, r.text)
    assert set(r.json()) == {"code", "message", "details"}
    assert await snapshot(db) == before, (method, url)


@pytest.mark.parametrize("channel", sorted(PARENTS))
async def test_a_parent_acts_only_for_their_own_student(
    api: httpx.AsyncClient, db: Sessions, channel: Channel
) -> None:
    w = await two_of_each(api)
    me = as_(channel.value, w.student)
    o = w.other_student
    booking = {"student_id": o, "timeslot_id": w.their_slot, "course_type": "major"}
    for method, url, kw in (
        ("POST", "/v1/classes", {"json": booking}),
        ("POST", f"/v1/classes/{w.their_class}/cancel", {"json": {}}),
        ("GET", f"/v1/classes/{w.their_class}", {}),
        ("GET", f"/v1/students/{o}", {}),
        ("GET", f"/v1/students/{o}/classes", {}),
        ("GET", f"/v1/students/{o}/balances", {}),
        ("GET", f"/v1/students/{o}/ledger", {}),
        ("GET", f"/v1/students/{o}/replays", {}),
        ("POST", "/v1/open-classes/1/seats", {"json": {"student_id": o}}),
        ("POST", "/v1/open-classes/1/replays", {"json": {"student_id": o}}),
    ):
        await assert_forbidden_actor(api, db, method, url, me, **kw)
    # An actor id that is not exactly the student's id acts for nobody.
    for actor in ("abc", f"0{w.student}", f"{w.student}.0"):
        await assert_forbidden_actor(
            api, db, "POST", "/v1/classes", as_(channel.value, actor), json=booking
        )
    # The same requests for their own student go through.
    mine = {**booking, "student_id": w.student}
    r = await api.post("/v1/classes", json=mine, headers=me)
    assert r.status_code == 201, r.text
    for url in (
        f"/v1/classes/{r.json()['id']}",
        f"/v1/students/{w.student}",
        f"/v1/students/{w.student}/classes",
        f"/v1/students/{w.student}/balances",
        f"/v1/students/{w.student}/ledger",
    ):
        assert (await api.get(url, headers=me)).status_code == 200, url
    cancelled = await api.post(f"/v1/classes/{r.json()['id']}/cancel", json={}, headers=me)
    assert cancelled.status_code == 200, cancelled.text


@pytest.mark.parametrize("channel", sorted(PARENTS))
async def test_a_parent_cannot_list_another_students_held_slots(
    api: httpx.AsyncClient, db: Sessions, channel: Channel
) -> None:
    """Availability with student_id shows the slots held for that student: a parent may ask
    only for their own."""
    w = await two_of_each(api)
    params = {
        "start_from": T0.isoformat(),
        "start_to": (T0 + 9 * DAY).isoformat(),
        "student_id": w.other_student,
    }
    await assert_forbidden_actor(
        api, db, "GET", "/v1/timeslots", as_(channel.value, w.student), params=params
    )
    mine = {**params, "student_id": w.student}
    r = await api.get("/v1/timeslots", params=mine, headers=as_(channel.value, w.student))
    assert r.status_code == 200, r.text


async def test_the_teacher_portal_acts_only_for_its_own_teacher(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    w = await two_of_each(api)
    me = as_("teacher", w.teacher)
    u = w.other_teacher
    later = (T0 + 5 * DAY).isoformat()
    for method, url, kw in (
        ("POST", f"/v1/teachers/{u}/timeslots", {"json": {"start_at": [later]}}),
        ("POST", f"/v1/teachers/{u}/timeslots/close", {"json": {"timeslot_ids": [w.their_slot]}}),
        # Their slot through my own route is not mine either (404, below), but naming their
        # teacher id is refused as an actor first.
        ("GET", f"/v1/classes/{w.their_class}", {}),
        ("GET", f"/v1/teachers/{u}/contract-weeks", {}),
    ):
        await assert_forbidden_actor(api, db, method, url, me, **kw)
    for actor in ("abc", str(u), f"0{w.teacher}"):
        await assert_forbidden_actor(
            api,
            db,
            "POST",
            f"/v1/teachers/{w.teacher}/timeslots",
            as_("teacher", actor),
            json={"start_at": [later]},
        )
    # Another teacher's slot id through my own route: it is not mine, so not found, unchanged.
    before = await snapshot(db)
    r = await api.post(
        f"/v1/teachers/{w.teacher}/timeslots/close",
        json={"timeslot_ids": [w.their_slot]},
        headers=me,
    )
    assert (r.status_code, r.json()["code"]) == (404, "timeslot_not_found")
    assert await snapshot(db) == before
    # Their own: fine.
    r = await api.post(
        f"/v1/teachers/{w.teacher}/timeslots", json={"start_at": [later]}, headers=me
    )
    assert r.status_code == 201, r.text
    r = await api.post(
        f"/v1/teachers/{w.teacher}/timeslots/close",
        json={"timeslot_ids": [w.own_slot]},
        headers=me,
    )
    assert r.status_code == 200, r.text
    # The other teacher reads their own class.
    r = await api.get(f"/v1/classes/{w.their_class}", headers=as_("teacher", u))
    assert r.status_code == 200, r.text


async def test_staff_channels_act_for_anyone(api: httpx.AsyncClient) -> None:
    w = await two_of_each(api)
    for channel in ("lp", "cc", "tmk", "fireman"):
        r = await api.get(f"/v1/classes/{w.their_class}", headers=as_(channel, "staff-7"))
        assert r.status_code == 200, (channel, r.text)
    r = await api.post(
        f"/v1/teachers/{w.other_teacher}/timeslots",
        json={"start_at": [(T0 + 5 * DAY).isoformat()]},
        headers=as_("fireman", "ops-1"),
    )
    assert r.status_code == 201, r.text
