"""Typed (pydantic v2) request and response models, and the WebSocket event parser.

Every model allows extra fields, so a field the service adds later never breaks this client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

if TYPE_CHECKING:
    from ._resources import Files

__all__ = [
    "Backend",
    "ComfyOneModel",
    "ErrorEvent",
    "Event",
    "FinishedEvent",
    "PendingEvent",
    "ProgressEvent",
    "SubmitRequest",
    "TaskEvent",
    "TaskInput",
    "TaskResult",
    "TaskState",
    "TaskStatus",
    "UploadedFile",
    "Workflow",
    "WorkflowInput",
    "WorkflowSpec",
    "parse_event",
    "task_id_from",
]

_log = logging.getLogger("comfyone_sdk")

InputType = Literal["image", "string", "number", "boolean"]


class ComfyOneModel(BaseModel):
    """Base of every SDK model: unknown fields are kept, numbers become str where str is due."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True)


class Backend(ComfyOneModel):
    """A ComfyUI instance registered to the account; ``name`` is its instance id."""

    name: str
    state: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _name_from_instance_id(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and "name" not in value and "instance_id" in value:
            return {**value, "name": value["instance_id"]}
        return value


class WorkflowInput(ComfyOneModel):
    """One overridable node input: node ``id``, input ``name`` and its ``type``."""

    id: str = Field(min_length=1)
    type: InputType
    name: str = Field(min_length=1)


class WorkflowSpec(ComfyOneModel):
    """The body of ``POST /v1/workflows`` (and of an update), checked before sending."""

    name: str = Field(min_length=1)
    inputs: list[WorkflowInput] = Field(default_factory=list)
    outputs: list[str] = Field(min_length=1)
    workflow: dict[str, dict[str, Any]] = Field(min_length=1)

    @model_validator(mode="after")
    def _nodes_exist(self) -> WorkflowSpec:
        # Catch the typo here rather than as an opaque server error after an upload round trip.
        for item in self.inputs:
            if item.id not in self.workflow:
                raise ValueError(f"input {item.id}.{item.name} names no node of the workflow")
        for node in self.outputs:
            if node not in self.workflow:
                raise ValueError(f"output {node} names no node of the workflow")
        return self


class Workflow(ComfyOneModel):
    """A registered workflow as the service returns it; every field but ``id`` may be absent."""

    id: str
    name: str | None = None
    inputs: list[WorkflowInput] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    workflow: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _id_synonyms(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and "id" not in value:
            for key in ("workflow_id", "workflowId"):
                if key in value:
                    return {**value, "id": value[key]}
        return value


class TaskInput(ComfyOneModel):
    """Parameters for one node: ``{"id": "5", "params": {"width": 1024}}``.

    The flat form ``{"id": "5", "width": 1024}`` is accepted too (keys beside ``id`` are params).
    """

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    id: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _flat_form(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and "params" not in value:
            rest = {k: v for k, v in value.items() if k != "id"}
            return {"id": value.get("id"), "params": rest}
        return value


class SubmitRequest(ComfyOneModel):
    """The body of ``POST /v1/prompts``; fields left ``None`` are not sent."""

    model_config = ConfigDict(extra="forbid")

    workflow_id: str = Field(min_length=1)
    inputs: list[TaskInput] = Field(default_factory=list)
    free_cache: bool | None = None
    free_gpu: bool | None = None
    backend: str | None = Field(default=None, min_length=1)


class TaskState(StrEnum):
    """A task's state, with the service's spellings (``pendding``, ``cancel``) normalised."""

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @classmethod
    def _missing_(cls, value: object) -> TaskState:
        text = str(value).strip().lower()
        aliases = {
            "pendding": cls.PENDING,
            "queued": cls.PENDING,
            "cancel": cls.CANCELLED,
            "canceled": cls.CANCELLED,
        }
        if text in aliases:
            return aliases[text]
        for member in cls:
            if member.value == text:
                return member
        # Liberal in what we accept: a new state must not break status() for old clients.
        return cls.UNKNOWN

    @property
    def is_terminal(self) -> bool:
        return self in (TaskState.FINISHED, TaskState.FAILED, TaskState.CANCELLED)


class TaskStatus(ComfyOneModel):
    """The ``data`` of ``GET /v1/prompts/{id}/status``; ``cost_time`` is in milliseconds."""

    status: TaskState
    images: list[str] = Field(default_factory=list)
    cost_time: float | None = None
    error_node: str | None = None
    message: str | None = None

    @field_validator("images", mode="before")
    @classmethod
    def _images_none(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal


class UploadedFile(ComfyOneModel):
    """The reply of ``POST /v1/files``; ``path`` is what an ``image`` input takes."""

    path: str

    @model_validator(mode="before")
    @classmethod
    def _path_synonyms(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"path": value}
        if isinstance(value, Mapping) and "path" not in value:
            for key in ("Path", "url"):
                if value.get(key):
                    return {**value, "path": value[key]}
        return value


class TaskResult(ComfyOneModel):
    """What ``prompts.run()`` returns for a finished task."""

    task_id: str
    status: TaskState
    images: list[str] = Field(default_factory=list)
    cost_time: float | None = None

    _files: Files | None = PrivateAttr(default=None)

    def download(self, dest: str | Path, *, timeout: float | None = None) -> list[Path]:
        """Download every result image into the folder ``dest`` and return the paths."""
        if self._files is None:
            raise RuntimeError("this TaskResult is not bound to a client")
        folder = Path(dest)
        folder.mkdir(parents=True, exist_ok=True)
        return [self._files.download(url, folder, timeout=timeout) for url in self.images]


# --- WebSocket events --------------------------------------------------------------------


class TaskEvent(ComfyOneModel):
    """Base of the four event types; every event names its task."""

    task_id: str


class PendingEvent(TaskEvent):
    """The task waits for an instance; ``position`` is its place in the queue (0 = next)."""

    type: Literal["pending"] = "pending"
    position: int = 0


class ProgressEvent(TaskEvent):
    """The task runs; ``percent`` is 0-100."""

    type: Literal["progress"] = "progress"
    percent: float = 0.0


class FinishedEvent(TaskEvent):
    """Terminal: on success fetch the results with ``prompts.status()``."""

    type: Literal["finished"] = "finished"
    success: bool = True


class ErrorEvent(TaskEvent):
    """The task failed with ``message``."""

    type: Literal["error"] = "error"
    message: str = ""


Event = PendingEvent | ProgressEvent | FinishedEvent | ErrorEvent


def _as_number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def parse_event(raw: str | bytes) -> Event | None:
    """Parse one WebSocket frame into a typed event; ``None`` for anything unusable.

    Pure function: accepts ``taskId``/``task_id``, ``pendding``/``pending``, and frames that
    carry all four data keys (``message``, ``current``, ``success``, ``process``).
    """
    try:
        frame = json.loads(raw)
    except (TypeError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(frame, dict):
        return None
    kind = str(frame.get("type", "")).strip().lower()
    task_id = frame.get("taskId", frame.get("task_id"))
    if task_id is None or task_id == "":
        return None
    task_id = str(task_id)
    data = frame.get("data")
    if not isinstance(data, dict):
        data = {}
    if kind in ("pendding", "pending"):
        position = int(max(0.0, _as_number(data.get("current"), 0.0)))
        return PendingEvent(task_id=task_id, position=position)
    if kind == "progress":
        percent = min(100.0, max(0.0, _as_number(data.get("process"), 0.0)))
        return ProgressEvent(task_id=task_id, percent=percent)
    if kind == "finished":
        success = data.get("success", True)
        if isinstance(success, str):
            success = success.strip().lower() in ("true", "1", "yes")
        return FinishedEvent(task_id=task_id, success=bool(success))
    if kind == "error":
        message = data.get("message")
        if message is None:
            message = data.get("msg", "")
        return ErrorEvent(task_id=task_id, message=str(message))
    return None


def task_id_from(data: Any) -> str | None:
    """The task id in a submit reply: a bare value, or ``taskId``, else ``task_id``, else ``id``."""
    if isinstance(data, str | int) and not isinstance(data, bool):
        return str(data) or None
    if isinstance(data, Mapping):
        for key in ("taskId", "task_id", "id"):
            value = data.get(key)
            if value not in (None, ""):
                return str(value)
    return None
