"""Replay every recorded history against today's workflow code (ARCHITECTURE rule 9).

A change that would break a running flow fails here; such a change needs `workflow.patched`.

Every file under tests/histories/ is replayed, whatever its name or depth. The recorder (conftest
`record_histories`) names them `<flow>/<path>.json`: <flow> the kind of flow (`class_request`…),
<path> the recording test's name without `test_`; `<path>.2.json`, `.3`… are further shapes of
that path (the code changed, or the test's flows went different ways), and `<path>-2.json`… are
same-shape copies kept from the old naming. None is ever deleted: it may be a flow still running
in production. Record the paths of new or changed code (nothing is written for a shape already
kept) with:
    YUEKE_RECORD_HISTORIES=1 scripts/test
"""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker import WORKFLOWS
from workflows.auto_booking import WeeklyBookingWorkflow
from workflows.class_request import ClassRequestWorkflow
from workflows.contract import ContractWorkflow
from workflows.fake_cancel import FakeCancelWorkflow
from workflows.operation_key_cleanup import OperationKeyCleanupWorkflow
from workflows.overbooked_class import OverbookedClassWorkflow
from workflows.teacher_cancel import TeacherCancelHoldWorkflow
from workflows.teacher_reservation import TeacherReservationWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow

ROOT = Path(__file__).parent / "histories"
HISTORIES = {
    path.relative_to(ROOT).with_suffix("").as_posix(): path
    for path in sorted(ROOT.glob("**/*.json"))
}

# The folders of each workflow's histories: the flow ids' prefixes, with underscores.
FOLDERS: dict[type, tuple[str, ...]] = {
    ClassRequestWorkflow: ("class_request",),
    TeacherCancelHoldWorkflow: ("teacher_cancel",),
    ContractWorkflow: ("contract",),
    WeeklyBookingWorkflow: ("auto_booking", "exclusive_booking"),
    OverbookedClassWorkflow: ("overbook",),
    TeacherReservationWorkflow: ("teacher_reservation",),
    OperationKeyCleanupWorkflow: ("operation_key_cleanup",),
    FakeCancelWorkflow: ("fake_cancel",),
    WebhookDeliveryWorkflow: ("webhook_delivery",),
}


def test_every_flow_has_recorded_histories() -> None:
    assert set(FOLDERS) == set(WORKFLOWS), "map each workflow of worker.WORKFLOWS to its folders"
    missing = [
        f for folders in FOLDERS.values() for f in folders if not any((ROOT / f).glob("**/*.json"))
    ]
    assert not missing, f"no recorded history in tests/histories/{missing}"


def workflow_type(name: str) -> str:
    history = WorkflowHistory.from_json(name, HISTORIES[name].read_text())
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


def test_each_history_is_filed_under_its_workflow() -> None:
    folder_of = {folder: cls.__name__ for cls, folders in FOLDERS.items() for folder in folders}
    misfiled = [n for n in HISTORIES if workflow_type(n) != folder_of.get(n.split("/")[0])]
    assert not misfiled


@pytest.mark.parametrize("name", HISTORIES)
async def test_history_replays(name: str) -> None:
    history = WorkflowHistory.from_json(name, HISTORIES[name].read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
