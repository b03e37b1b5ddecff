"""Rules and values the API refuses: who teaches what, who may take an
L7 major class, IANA time zones, local times without offsets, ids that are integers. Each
refusal is a specific 4xx JSON error and changes nothing.

covers: PAR-1, H5-1, H5-3, H5-4, LP-1, LP-2, LP-6, LP-8, SD-1, SD-7, TCH-3, TCH-6, TMK-1, CC-1,
H5-10
"""

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Annotated, Any, get_args, get_origin

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import text

from api.app import create_app
from store.db import Sessions
from tests.conftest import T0, Clock
from tests.helpers import (
    CC,
    FIREMAN,
    LP,
    as_,
    assert_money_consistent,
    balances,
    client_showing_500s,
    grant,
    open_slots,
    snapshot,
    student,
    teacher,
)
from yueke.settings import Settings

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@pytest.fixture
async def api(settings: Settings, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    async with client_showing_500s(settings, clock) as client:
        yield client


async def refuses(
    api: httpx.AsyncClient,
    db: Sessions,
    method: str,
    url: str,
    status: int,
    code: str,
    **kwargs: Any,
) -> dict[str, Any]:
    """Exactly this status and code, as {"code", "message", "details"}, and nothing changed."""
    before = await snapshot(db)
    r = await api.request(method, url, **kwargs)
    assert r.status_code == status, f"{method} {url} {kwargs.get('json')}: {r.status_code} {r.text}"
    body = r.json()
    assert set(body) == {"code", "message", "details"} and body["code"] == code, r.text
    assert await snapshot(db) == before, f"{method} {url} changed the database"
    return dict(body["details"])


async def student_at_level(api: httpx.AsyncClient, level: int) -> int:
    r = await api.post("/v1/students", json={"name": "S", "level": level}, headers=CC)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def class_count(db: Sessions) -> int:
    async with db() as session:
        return int(await session.scalar(text("select count(*) from classes")) or 0)


# --- 1. Chinese teachers teach only the Chinese half of all-round advanced and contracts ------

NOT_FOR_CHINESE = ("major", "l7_major", "trial", "special", "open")


async def test_a_chinese_teacher_is_not_registered_for_ordinary_course_types(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """Registering a Chinese teacher certified for anything but all-round advanced is refused;
    a foreign teacher may be certified for any course type."""
    for course_type in NOT_FOR_CHINESE:
        details = await refuses(
            api,
            db,
            "POST",
            "/v1/teachers",
            422,
            "course_type_not_for_chinese_teacher",
            json={"name": "Li", "kind": "chinese", "course_types": ["advanced", course_type]},
            headers=FIREMAN,
        )
        assert details["course_types"] == [course_type], details
    r = await api.post(
        "/v1/teachers",
        json={"name": "Li", "kind": "chinese", "course_types": ["advanced"]},
        headers=FIREMAN,
    )
    assert (r.status_code, r.json()["course_types"]) == (201, ["advanced"]), r.text
    r = await api.post(
        "/v1/teachers",
        json={"name": "Ann", "kind": "foreign", "course_types": list(NOT_FOR_CHINESE)},
        headers=FIREMAN,
    )
    assert r.status_code == 201, r.text


async def test_booking_an_ordinary_class_with_a_chinese_teacher_is_refused(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """PAR-1, H5-1, H5-3, H5-4, LP-2, LP-8, TCH-3: a Chinese teacher registered before the rule
    with ordinary course types on record is still never booked for them, nor requested: 422
    course_type_not_for_chinese_teacher, no class, no payment. All-round advanced still books."""
    zh = await teacher(api, kind="chinese", course_types=("advanced",))
    async with db.begin() as session:  # as registered before the rule existed
        await session.execute(
            text("update teachers set course_types = :c where id = :t"),
            {"c": sorted([*NOT_FOR_CHINESE, "advanced"]), "t": zh},
        )
    s = await student_at_level(api, 7)
    for course_type in (*NOT_FOR_CHINESE, "advanced"):
        await grant(api, s, "credit", 2, course_type)
    await grant(api, s, "stones", 1000)
    r = await api.post(f"/v1/students/{s}/courses", json={"course_type": "special"}, headers=LP)
    assert r.status_code == 201, r.text  # H5-6: special classes wait for the special course
    slots = await open_slots(api, zh, *(T0 + 2 * DAY + i * HOUR for i in range(3)))
    before = await balances(api, s)
    for course_type in NOT_FOR_CHINESE:
        # An open class is taken by seat only: taking one 1-on-1 is refused as that first.
        booking_code = (
            "open_class_by_seat" if course_type == "open" else "course_type_not_for_chinese_teacher"
        )
        for payment in ({"asset": "credit"}, {"asset": "stones"}):
            details = await refuses(
                api,
                db,
                "POST",
                "/v1/classes",
                422,
                booking_code,
                json={
                    "student_id": s,
                    "timeslot_id": slots[0],
                    "course_type": course_type,
                    "payment": payment,
                },
                headers=as_("parent_h5", s),
            )
            assert details["course_type"] == course_type
            assert course_type == "open" or details["teacher_id"] == zh
        await refuses(
            api,
            db,
            "POST",
            "/v1/classes/batch",
            422,
            booking_code,
            json={"student_id": s, "timeslot_ids": slots[:2], "course_type": course_type},
            headers=LP,
        )
        await refuses(
            api,
            db,
            "POST",
            "/v1/class-requests",
            422,
            booking_code,
            json={
                "student_id": s,
                "teacher_id": zh,
                "start_at": (T0 + 3 * DAY).isoformat(),
                "course_type": course_type,
            },
            headers=LP,
        )
    assert await balances(api, s) == before
    assert await class_count(db) == 0
    r = await api.post(
        "/v1/classes",
        json={"student_id": s, "timeslot_id": slots[0], "course_type": "advanced"},
        headers=CC,
    )
    assert r.status_code == 201, r.text
    await assert_money_consistent(db)


# --- 2. L7 major classes are for Level 7 students ----------------------------------------------


async def test_only_level_7_students_take_l7_major(api: httpx.AsyncClient, db: Sessions) -> None:
    """H5-4, LP-2, LP-8, LP-1, TCH-3, TMK-1, CC-1: a student below (or above) Level 7 is refused
    an L7 major class, by booking, batch, class request, over-booking or auto-booking rule: 422
    l7_students_only, and nothing changes. A Level 7 student books it."""
    t = await teacher(api, course_types=("major", "l7_major"))
    slots = await open_slots(api, t, *(T0 + 2 * DAY + i * HOUR for i in range(3)))
    for level in (1, 6, 8):
        s = await student_at_level(api, level)
        await grant(api, s, "credit", 3, "l7_major")
        await grant(api, s, "stones", 1000)
        before = await balances(api, s)
        booking = {"student_id": s, "timeslot_id": slots[0], "course_type": "l7_major"}
        for payment in ({"asset": "credit"}, {"asset": "stones"}):
            details = await refuses(
                api,
                db,
                "POST",
                "/v1/classes",
                422,
                "l7_students_only",
                json={**booking, "payment": payment},
                headers=as_("parent_h5", s),
            )
            assert (details["student_id"], details["level"]) == (s, level)
        await refuses(
            api,
            db,
            "POST",
            "/v1/classes/batch",
            422,
            "l7_students_only",
            json={"student_id": s, "timeslot_ids": slots[:2], "course_type": "l7_major"},
            headers=LP,
        )
        await refuses(
            api,
            db,
            "POST",
            "/v1/class-requests",
            422,
            "l7_students_only",
            json={
                "student_id": s,
                "teacher_id": t,
                "start_at": (T0 + 3 * DAY).isoformat(),
                "course_type": "l7_major",
            },
            headers=LP,
        )
        await refuses(
            api,
            db,
            "POST",
            "/v1/overbooked-classes",
            422,
            "l7_students_only",
            json={
                "student_id": s,
                "start_at": (T0 + 3 * DAY).isoformat(),
                "course_type": "l7_major",
                "payment": {"asset": "stones"},
            },
            headers=CC,
        )
        await refuses(
            api,
            db,
            "PUT",
            f"/v1/students/{s}/auto-booking-rule",
            422,
            "l7_students_only",
            json={
                "wishes": [{"weekday": "wednesday", "start": "18:00"}],
                "course_type": "l7_major",
            },
            headers=LP,
        )
        assert await balances(api, s) == before
    assert await class_count(db) == 0
    l7 = await student_at_level(api, 7)
    await grant(api, l7, "credit", 1, "l7_major")
    r = await api.post(
        "/v1/classes",
        json={"student_id": l7, "timeslot_id": slots[0], "course_type": "l7_major"},
        headers=as_("parent_h5", l7),
    )
    assert (r.status_code, r.json()["course_type"]) == (201, "l7_major"), r.text
    await assert_money_consistent(db)


async def test_an_open_class_is_taken_by_seat_on_every_one_on_one_path(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """FM-1, LP-6, TMK-1, CC-1, LP-1, SD-7: force-book, a class request, over-booking, an
    auto-booking rule and a contract of course type open are refused as booking one is (422
    open_class_by_seat, naming the seats route): an open class is sold by the seat. Nothing
    changes, though the teacher is certified for open classes and the student has the credits."""
    t = await teacher(api, course_types=("major", "open"))
    zh = await teacher(api, kind="chinese", course_types=("advanced",))
    s = await student(api, credits={"open": 5})
    await grant(api, s, "stones", 1000)
    start = (T0 + 2 * DAY).isoformat()
    before = await balances(api, s)
    for method, url, body, headers in (
        (
            "POST",
            "/v1/classes/force-book",
            {
                "student_id": s,
                "teacher_id": t,
                "start_at": start,
                "course_type": "open",
                "reason": "parent called",
            },
            FIREMAN,
        ),
        (
            "POST",
            "/v1/class-requests",
            {"student_id": s, "teacher_id": t, "start_at": start, "course_type": "open"},
            LP,
        ),
        (
            "POST",
            "/v1/overbooked-classes",
            {
                "student_id": s,
                "start_at": start,
                "course_type": "open",
                "payment": {"asset": "stones"},
            },
            CC,
        ),
        (
            "PUT",
            f"/v1/students/{s}/auto-booking-rule",
            {
                "wishes": [{"weekday": "wednesday", "start": "18:00"}],
                "teacher_ids": [t],
                "course_type": "open",
            },
            LP,
        ),
        (
            "POST",
            "/v1/contracts",
            {
                "student_id": s,
                "chinese": {"teacher_id": zh, "weekday": "tuesday", "start": "21:00"},
                "foreign": {"teacher_id": t, "weekday": "thursday", "start": "18:00"},
                "first_week": (T0 + 7 * DAY).date().isoformat(),
                "weeks": 4,
                "course_type": "open",
            },
            LP,
        ),
    ):
        details = await refuses(
            api, db, method, url, 422, "open_class_by_seat", json=body, headers=headers
        )
        assert "/v1/open-classes/" in details["seats"], (url, details)
    assert await balances(api, s) == before
    assert await class_count(db) == 0


# --- 3. time zones are IANA names --------------------------------------------------------------


async def test_time_zones_are_iana_names(api: httpx.AsyncClient, db: Sessions) -> None:
    """H5-10: teachers, students and the real booking's new student take an IANA time zone;
    anything else is 422 malformed_body and registers no one."""
    start = (T0 + 2 * DAY).isoformat()
    for zone in ("Mars/Olympus", "utc", "+08:00", "Asia", "Asia/", "../etc/passwd", "zone.tab"):
        for url, body, headers in (
            ("/v1/teachers", {"name": "T", "kind": "foreign", "course_types": ["major"]}, FIREMAN),
            ("/v1/students", {"name": "S"}, CC),
            (
                "/v1/overbooked-classes/real-booking",
                {"name": "S", "parent_account": "wx-1", "start_at": start},
                CC,
            ),
        ):
            details = await refuses(
                api,
                db,
                "POST",
                url,
                422,
                "malformed_body",
                json={**body, "time_zone": zone},
                headers=headers,
            )
            assert [e["at"] for e in details["errors"]] == ["body.time_zone"], details
    for zone in ("Asia/Shanghai", "America/New_York", "UTC"):
        r = await api.post("/v1/students", json={"name": "S", "time_zone": zone}, headers=CC)
        assert (r.status_code, r.json()["time_zone"]) == (201, zone), r.text


def test_the_business_time_zones_in_the_settings_are_iana_names() -> None:
    """A typo in YUEKE_RULES__BUSINESS_TIME_ZONE fails at start-up, not in the first booking."""
    for rules in (
        {"business_time_zone": "Mars/Olympus"},
        {"overbooking": {"reservation_time_zone": "Asia/Beijing"}},
    ):
        with pytest.raises(ValidationError):
            Settings(rules=rules)
    assert Settings(rules={"business_time_zone": "Asia/Hong_Kong"}).rules.business_time_zone


# --- 4. wished local times take no offset ------------------------------------------------------


async def test_local_times_with_an_offset_are_refused(api: httpx.AsyncClient, db: Sessions) -> None:
    """LP-1, SD-1, SD-7, TCH-6: wished weekly times and contract times are local
    (Asia/Shanghai): an offset or a Z would be dropped, so it is 422 malformed_body."""
    t = await teacher(api)
    zh = await teacher(api, kind="chinese", course_types=("advanced",))
    s = await student(api)
    monday = (T0 + 7 * DAY).date().isoformat()
    for start in ("18:00:00-05:00", "18:00+08:00", "18:00Z", "18:00:00Z", 64800, "1800", "6pm"):
        wishes = [{"weekday": "wednesday", "start": start}]
        for url, body in (
            (f"/v1/students/{s}/auto-booking-rule", {"wishes": wishes, "teacher_ids": [t]}),
            (f"/v1/students/{s}/exclusive-teacher", {"teacher_id": t, "wishes": wishes}),
        ):
            details = await refuses(
                api, db, "PUT", url, 422, "malformed_body", json=body, headers=LP
            )
            assert [e["at"] for e in details["errors"]] == ["body.wishes.0.start"], details
        contract = {
            "student_id": s,
            "chinese": {"teacher_id": zh, "weekday": "tuesday", "start": "21:00"},
            "foreign": {"teacher_id": t, "weekday": "thursday", "start": start},
            "first_week": monday,
            "weeks": 4,
        }
        details = await refuses(
            api, db, "POST", "/v1/contracts", 422, "malformed_body", json=contract, headers=LP
        )
        assert [e["at"] for e in details["errors"]] == ["body.foreign.start"], details
    for start in ("18:00", "18:00:00"):
        r = await api.put(
            f"/v1/students/{s}/auto-booking-rule",
            json={"wishes": [{"weekday": "wednesday", "start": start}], "teacher_ids": [t]},
            headers=LP,
        )
        assert (r.status_code, r.json()["wishes"][0]["start"]) == (200, "18:00:00"), r.text


# --- 5. ids are integers -----------------------------------------------------------------------


async def test_ids_in_bodies_are_strict_integers(api: httpx.AsyncClient, db: Sessions) -> None:
    """PAR-1, LP-2, LP-8: "1", true, 1.0 are not student 1 in a JSON body: 422 malformed_body,
    nothing booked and nothing paid."""
    t = await teacher(api)
    s = await student(api, credits={"major": 2})
    await grant(api, s, "stones", 500)
    slots = await open_slots(api, t, T0 + 2 * DAY, T0 + 2 * DAY + HOUR)
    good = {"student_id": s, "timeslot_id": slots[0], "course_type": "major"}
    for field, value in (
        ("student_id", str(s)),
        ("student_id", True),
        ("student_id", float(s)),
        ("timeslot_id", str(slots[0])),
        ("timeslot_id", False),
        ("payment", {"asset": "coupon", "coupon_id": "1"}),
    ):
        details = await refuses(
            api,
            db,
            "POST",
            "/v1/classes",
            422,
            "malformed_body",
            json={**good, field: value},
            headers=LP,
        )
        assert details["errors"][0]["at"].startswith(f"body.{field}"), details
    await refuses(
        api,
        db,
        "POST",
        "/v1/classes/batch",
        422,
        "malformed_body",
        json={"student_id": s, "timeslot_ids": [slots[0], str(slots[1])], "course_type": "major"},
        headers=LP,
    )
    assert (await balances(api, s))["credits"] == {"major": 2}
    r = await api.post("/v1/classes", json=good, headers=LP)
    assert r.status_code == 201, r.text


def _id_fields(model: type[BaseModel], at: str = "") -> list[tuple[str, Any]]:
    """(where, annotation with its metadata) of every id field of a body model, nested too."""
    found = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if field.metadata:
            annotation = Annotated[(annotation, *field.metadata)]
        if name == "id" or name.endswith(("_id", "_ids")):
            found.append((at + name, annotation))
        for inner in (field.annotation, *get_args(field.annotation)):
            for leaf in (inner, *get_args(inner)):
                if isinstance(leaf, type) and issubclass(leaf, BaseModel):
                    found += _id_fields(leaf, f"{at}{name}.")
    return found


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, through included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (inner := getattr(route, "original_router", None)) is not None:
            yield from api_routes(inner.routes)


def test_every_id_in_every_body_is_a_strict_integer(settings: Settings) -> None:
    """Every route's body, every id in it: an integer, never a string, a boolean or a float."""
    checked = []
    for route in api_routes(create_app(settings).routes):
        body = route.body_field
        if body is None:
            continue
        for where, annotation in _id_fields(body.field_info.annotation):
            adapter = TypeAdapter(annotation)
            plural = get_origin(annotation) is list or "_ids" in where
            for bad in ("1", True, 1.0):
                with pytest.raises(ValidationError):
                    adapter.validate_python([bad] if plural else bad)
            adapter.validate_python([1] if plural else 1)
            checked.append(f"{route.path} {where}")
    assert len(checked) > 25, checked


async def test_ids_in_paths_and_queries_are_decimal_integers(
    api: httpx.AsyncClient, db: Sessions
) -> None:
    """A path or query id is text: "7" is 7, but "true", "1.0", " 7", "7_0" are not ids."""
    s = await student(api)
    for bad in ("true", f"{s}.0", f"+{s}", f"{s}_0", f" {s}", "0x1", "١"):
        await refuses(api, db, "GET", f"/v1/students/{bad}", 422, "malformed_body", headers=CC)
        await refuses(
            api,
            db,
            "GET",
            "/v1/timeslots",
            422,
            "malformed_body",
            params={
                "start_from": T0.isoformat(),
                "start_to": (T0 + DAY).isoformat(),
                "teacher_id": bad,
            },
            headers=CC,
        )
    r = await api.get(f"/v1/students/{s}", headers=CC)
    assert (r.status_code, r.json()["id"]) == (200, s), r.text
    r = await api.get(
        "/v1/timeslots",
        params={"start_from": T0.isoformat(), "start_to": (T0 + DAY).isoformat(), "teacher_id": 1},
        headers=CC,
    )
    assert r.status_code == 200, r.text
