"""Replay every recorded history against today's workflow code (ARCHITECTURE rule 9).

A change that would break a running flow fails here; such a change needs `workflow.patched`.
Record the histories anew with:
    YUEKE_RECORD_HISTORIES=1 scripts/test
"""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker import WORKFLOWS

HISTORIES = {
    f"{path.parent.name}/{path.stem}": path.read_text()
    for path in sorted((Path(__file__).parent / "histories").glob("*/*.json"))
}


def test_every_flow_has_recorded_histories() -> None:
    kinds = {name.split("/")[0] for name in HISTORIES}
    assert {"class-request", "teacher-cancel"} <= kinds
    assert {"contract", "auto-booking", "exclusive-booking"} <= kinds  # issue 4
    assert {"overbook", "teacher-reservation"} <= kinds  # issue 5


@pytest.mark.parametrize("name", HISTORIES)
async def test_history_replays(name: str) -> None:
    history = WorkflowHistory.from_json(name, HISTORIES[name])
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
