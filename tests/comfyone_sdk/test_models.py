"""Models accept every spelling the contract lists, keep unknown fields, and parse events."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from comfyone_sdk import (
    Backend,
    ErrorEvent,
    FinishedEvent,
    PendingEvent,
    ProgressEvent,
    TaskInput,
    TaskState,
    TaskStatus,
    UploadedFile,
    Workflow,
    WorkflowInput,
    parse_event,
)
from comfyone_sdk.models import task_id_from


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("pendding", TaskState.PENDING),
        ("pending", TaskState.PENDING),
        ("running", TaskState.RUNNING),
        ("finished", TaskState.FINISHED),
        ("failed", TaskState.FAILED),
        ("cancel", TaskState.CANCELLED),
        ("cancelled", TaskState.CANCELLED),
        ("Running", TaskState.RUNNING),
        ("teleporting", TaskState.UNKNOWN),
    ],
)
def test_task_state_spellings(raw: str, state: TaskState) -> None:
    assert TaskStatus.model_validate({"status": raw}).status is state


def test_task_status_fields_and_extras() -> None:
    status = TaskStatus.model_validate(
        {
            "status": "failed",
            "images": None,
            "cost_time": 1500,
            "error_node": 9,
            "message": "boom",
            "queue": 3,
        }
    )
    assert status.images == [] and status.cost_time == 1500 and status.error_node == "9"
    assert status.model_extra == {"queue": 3}
    assert status.is_terminal
    assert not TaskStatus(status=TaskState.RUNNING).is_terminal


@pytest.mark.parametrize(
    "data",
    [{"Path": "input/a.png"}, {"path": "input/a.png"}, {"url": "input/a.png"}, "input/a.png"],
)
def test_uploaded_file_synonyms(data: object) -> None:
    assert UploadedFile.model_validate(data).path == "input/a.png"


def test_uploaded_file_prefers_path_capitalised() -> None:
    assert UploadedFile.model_validate({"Path": "P", "url": "U"}).path == "P"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"taskId": "a"}, "a"),
        ({"task_id": "b"}, "b"),
        ({"id": 7}, "7"),
        ({"taskId": "a", "id": "z"}, "a"),
        ("bare", "bare"),
        ({}, None),
        (None, None),
    ],
)
def test_task_id_synonyms(data: object, expected: str | None) -> None:
    assert task_id_from(data) == expected


def test_task_input_forms() -> None:
    nested = TaskInput.model_validate({"id": "5", "params": {"width": 1}})
    flat = TaskInput.model_validate({"id": 5, "width": 1})
    assert nested == flat
    assert flat.model_dump() == {"id": "5", "params": {"width": 1}}
    with pytest.raises(ValidationError):
        TaskInput.model_validate({"params": {"width": 1}})


def test_workflow_input_types() -> None:
    for kind in ("image", "string", "number", "boolean"):
        assert WorkflowInput(id="1", type=kind, name="x").type == kind
    with pytest.raises(ValidationError):
        WorkflowInput.model_validate({"id": "1", "type": "float", "name": "x"})


def test_backend_and_workflow_tolerate_variants() -> None:
    assert Backend.model_validate({"instance_id": "i-1", "gpu": "4090"}).name == "i-1"
    workflow = Workflow.model_validate({"workflow_id": "wf_1", "owner": "me"})
    assert workflow.id == "wf_1" and workflow.model_extra == {"workflow_id": "wf_1", "owner": "me"}


def _frame(kind: str, data: dict, key: str = "taskId") -> str:
    return json.dumps({"type": kind, key: "t1", "data": data})


ALL_KEYS = {"message": "", "current": 0, "success": False, "process": 0}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (_frame("pendding", {"current": 3}), PendingEvent(task_id="t1", position=3)),
        (_frame("pending", {"current": 0}, "task_id"), PendingEvent(task_id="t1", position=0)),
        (_frame("progress", {"process": 42}), ProgressEvent(task_id="t1", percent=42)),
        (
            _frame("progress", {**ALL_KEYS, "process": 150}),
            ProgressEvent(task_id="t1", percent=100),
        ),
        (
            _frame("finished", {**ALL_KEYS, "success": True}),
            FinishedEvent(task_id="t1", success=True),
        ),
        (_frame("finished", {"success": False}), FinishedEvent(task_id="t1", success=False)),
        (_frame("error", {**ALL_KEYS, "message": "OOM"}), ErrorEvent(task_id="t1", message="OOM")),
        (
            _frame("pendding", {**ALL_KEYS, "current": 2}).encode(),
            PendingEvent(task_id="t1", position=2),
        ),
    ],
)
def test_parse_event(raw: str | bytes, expected: object) -> None:
    assert parse_event(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        json.dumps({"type": "progress", "data": {"process": 1}}),  # no task id
        json.dumps({"type": "mystery", "taskId": "t1", "data": {}}),
        b"\xff\xfe",
        "",
    ],
)
def test_parse_event_rejects_garbage(raw: str | bytes) -> None:
    assert parse_event(raw) is None


def test_parse_event_tolerates_bad_data() -> None:
    event = parse_event(json.dumps({"type": "progress", "taskId": 5, "data": "oops"}))
    assert event == ProgressEvent(task_id="5", percent=0)
    event = parse_event(_frame("pendding", {"current": "x"}))
    assert event == PendingEvent(task_id="t1", position=0)
