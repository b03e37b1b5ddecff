"""Refusals (ARCHITECTURE rule 7): each has its own code and HTTP status, and keeps both when it
crosses Temporal from an activity back to the API."""

import importlib
import pkgutil
from collections.abc import Iterator

import pytest

import domain
from domain.channels import ALLOWED, PARENTS, Actor, Channel, Operation
from domain.errors import (
    DomainError,
    Forbidden,
    InPast,
    InsufficientBalance,
    Invalid,
    NotFound,
    OutsideWindow,
)
from domain.refusal import Refusal


def refusal_classes() -> Iterator[type[DomainError]]:
    for module in pkgutil.iter_modules(domain.__path__):
        importlib.import_module(f"domain.{module.name}")
    pending = [DomainError]
    while pending:
        cls = pending.pop()
        yield cls
        pending += cls.__subclasses__()


def test_every_refusal_has_its_own_code() -> None:
    """A client tells refusals apart by code alone. Every refusal that is not only a base of
    others names its own code (NotFound names it per entity), and no two share one."""
    owners: dict[str, list[str]] = {}
    for cls in refusal_classes():
        if "code" in vars(cls):
            owners.setdefault(cls.code, []).append(cls.__qualname__)
        elif cls is not NotFound:
            assert cls.__subclasses__(), f"{cls.__qualname__} has no code of its own"
    assert {code: names for code, names in owners.items() if len(names) > 1} == {}
    assert "domain_error" in owners  # the base's, and only the base's
    assert owners["domain_error"] == [DomainError.__qualname__]


def test_statuses_follow_the_kind_of_refusal() -> None:
    """Bad input is 422, a state conflict 409, an unknown id 404, a forbidden caller 403."""
    for cls in refusal_classes():
        if issubclass(cls, Invalid):
            assert cls.status == 422, cls
        elif issubclass(cls, Forbidden):
            assert cls.status == 403, cls
    assert NotFound("teacher", 1).status == 404
    assert InsufficientBalance("x").status == 409


@pytest.mark.parametrize("entity", ["teacher", "student", "timeslot", "class", "coupon"])
def test_not_found_names_its_entity(entity: str) -> None:
    """covers: PAR-1, LP-2. The code says what was missing: teacher_not_found, …"""
    error = NotFound(entity, 999)
    assert error.code == f"{entity}_not_found"
    assert error.details == {"entity": entity, "id": 999}
    assert NotFound.code == "domain_error"  # one instance's code does not leak to the class


@pytest.mark.parametrize(
    "error",
    [
        OutsideWindow("too far", start_at="2030-01-07T10:00:00+00:00", latest="x"),
        InPast("past"),
        NotFound("class", 5),
        InsufficientBalance("poor", asset="stones", needed=100, balance=99),
    ],
)
def test_refusal_crosses_temporal_unchanged(error: DomainError) -> None:
    """covers: TCH-3, TCH-5. What an activity refuses is what the API answers: the same code,
    status, message and details after a JSON round trip."""
    refusal = Refusal.of(error)
    back = Refusal.model_validate_json(refusal.model_dump_json())
    assert (back.code, back.status, back.message, back.details) == (
        error.code,
        error.status,
        error.message,
        error.details,
    )


def test_every_operation_names_who_may_call_it() -> None:
    """An operation missing from the table would be a 500 for every caller."""
    assert set(ALLOWED) == set(Operation)
    assert all(ALLOWED[op] for op in Operation)


def test_parents_book_and_cancel_but_never_grant() -> None:
    """covers: PAR-1, PAR-3, H5-1, H5-5"""
    assert PARENTS <= ALLOWED[Operation.book_class]
    assert PARENTS <= ALLOWED[Operation.cancel_class]
    assert not PARENTS & ALLOWED[Operation.grant]


def test_only_the_teacher_answers_a_request_and_only_fireman_manages_a_hold() -> None:
    """covers: TCH-3, TCH-4, TCH-5"""
    assert ALLOWED[Operation.answer_request] == {Channel.teacher}
    assert ALLOWED[Operation.manage_hold] == {Channel.fireman}


def test_actor_is_a_value() -> None:
    """Actors are compared and hashed as values (they travel inside workflow inputs)."""
    assert Actor(channel=Channel.lp, id="7") == Actor(channel="lp", id="7")
    assert len({Actor(channel=Channel.lp, id="7"), Actor(channel=Channel.lp, id="7")}) == 1
