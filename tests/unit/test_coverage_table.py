"""The README's "What works, by operation ID" table and docs/operations.md agree with the
OpenAPI document: an ID the README says works names a route that covers it, every route's
"Covers:" IDs are in the table, and every operation ID of docs/operations.md is either in the
table or listed as not built."""

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from yueke.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ID = re.compile(r"\b[A-Z][A-Z0-9]{1,3}-\d+[a-z]?\b")
TABLE_HEADING = "## What works, by operation ID"
NOT_BUILT = "Not built yet:"
PARAMETER = re.compile(r"\{[^}]*\}")


@cache
def openapi_ids() -> dict[str, set[str]]:
    """Each operation ID named by a route's `x-operation-ids`, with the "METHOD path" routes."""
    routes: dict[str, set[str]] = {}
    paths: dict[str, dict[str, Any]] = create_app(Settings()).openapi()["paths"]
    for path, methods in paths.items():
        for method, operation in methods.items():
            for op_id in operation.get("x-operation-ids", []):
                routes.setdefault(op_id, set()).add(f"{method.upper()} {path}")
    return routes


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(TABLE_HEADING)
    end = text.index("\n## ", start + len(TABLE_HEADING))
    return text[start:end]


def table_rows() -> Iterator[tuple[set[str], str]]:
    """(IDs, route cell) of each row of the README table."""
    for line in readme_section().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and ID.search(cells[0]):
            yield set(ID.findall(cells[0])), cells[1]


def not_built() -> set[str]:
    section = readme_section()
    if NOT_BUILT not in section:
        return set()
    paragraph = section[section.index(NOT_BUILT) :].split("\n\n", 1)[0]
    return set(ID.findall(paragraph))


def names_route(cell: str, route: str) -> bool:
    """The cell's `…`-quoted fragments name the route: its path in full, or its start or end
    around an ellipsis (`…/undo-finish`, `/v1/class-requests…`); `{id}` stands for any path
    parameter."""
    path = PARAMETER.sub("{}", route.split(" ", 1)[1])
    for fragment in re.findall(r"`([^`]+)`", cell):
        wanted = fragment.split(" ", 1)[-1] if fragment.split(" ", 1)[0].isupper() else fragment
        wanted = PARAMETER.sub("{}", wanted)
        if wanted == path:
            return True
        if wanted.startswith("…") and path.endswith(wanted[1:]):
            return True
        if wanted.endswith("…") and path.startswith(wanted[:-1]):
            return True
    return False


def test_every_id_in_the_table_names_a_route_that_covers_it() -> None:
    routes = openapi_ids()
    wrong = []
    for ids, cell in table_rows():
        for op_id in sorted(ids):
            covering = routes.get(op_id, set())
            if not any(names_route(cell, route) for route in covering):
                wrong.append(f"{op_id}: README names {cell!r}; OpenAPI: {sorted(covering)}")
    assert not wrong, "\n".join(wrong)


def test_every_route_is_in_the_rows_of_the_ids_it_covers() -> None:
    rows = list(table_rows())
    wrong = [
        f"{route} covers {op_id}, which no README row naming it lists"
        for op_id, covering in openapi_ids().items()
        for route in sorted(covering)
        if not any(op_id in ids and names_route(cell, route) for ids, cell in rows)
    ]
    assert not wrong, "\n".join(wrong)


def test_every_id_a_route_covers_is_in_the_table() -> None:
    in_table = set().union(*(ids for ids, _ in table_rows()))
    missing = {op_id: sorted(r) for op_id, r in openapi_ids().items() if op_id not in in_table}
    assert not missing


@pytest.mark.parametrize("source", ["docs/operations.md"])
def test_every_operation_is_in_the_table_or_not_built(source: str) -> None:
    documented = set(ID.findall((ROOT / source).read_text()))
    in_table = set().union(*(ids for ids, _ in table_rows()))
    assert documented - in_table - not_built() == set()
    assert not (in_table & not_built())
