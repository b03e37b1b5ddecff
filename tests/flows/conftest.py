"""Workflow tests with the activities replaced by test doubles: no database."""

import pytest


@pytest.fixture(autouse=True)
def empty_tables() -> None:
    """The doubles keep their state in memory, so the suite's table reset is not needed."""
