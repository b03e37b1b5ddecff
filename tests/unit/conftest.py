"""Unit tests of the pure domain rules: no database, no Temporal."""

import pytest


@pytest.fixture(autouse=True)
def empty_tables() -> None:
    """These tests touch no tables, so the suite's autouse database reset is not needed."""
