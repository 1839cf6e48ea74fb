"""Public resources (``client.backends``, ``.workflows``, ``.files``, ``.prompts``): they validate
inputs, call the private base client, and turn ``data`` into typed models.
"""

from __future__ import annotations

import logging
import os
import queue
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import quote, unquote, urlsplit

from pydantic import BaseModel, ValidationError

from . import _constants as c
from ._base_client import BaseClient, Timeout
from .errors import (
    APIConnectionError,
    APIResponseError,
    ComfyOneError,
    InputValidationError,
    TaskFailedError,
    TaskTimeoutError,
)
from .models import (
    Backend,
    ErrorEvent,
    Event,
    FinishedEvent,
    SubmitRequest,
    TaskInput,
    TaskResult,
    TaskState,
    TaskStatus,
    UploadedFile,
    Workflow,
    WorkflowInput,
    WorkflowSpec,
    task_id_from,
)

if TYPE_CHECKING:
    from .realtime import RealtimeClient

__all__ = ["Backends", "Files", "Inputs", "Prompts", "Workflows"]

_log = logging.getLogger("comfyone_sdk")

M = TypeVar("M", bound=BaseModel)

Inputs = Sequence[TaskInput | Mapping[str, Any]] | Mapping[str, Mapping[str, Any]]
"""Task inputs: ``[{"id": "5", "params": {...}}]``, the flat ``[{"id": "5", "width": 1}]``, or
the shorthand ``{"5": {"width": 1}}`` (node id -> params)."""


def _validate(model: type[M], value: Any) -> M:
    """Validate before sending; pydantic's error becomes :class:`InputValidationError`."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise InputValidationError(f"invalid {model.__name__}: {exc}") from exc


def _task_inputs(inputs: Inputs | None) -> list[TaskInput]:
    if inputs is None:
        return []
    items: Iterable[Any]
    if isinstance(inputs, Mapping):
        items = [{"id": node, "params": dict(params)} for node, params in inputs.items()]
    else:
        items = inputs
    return [item if isinstance(item, TaskInput) else _validate(TaskInput, item) for item in items]


def _segment(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputValidationError(f"expected a non-empty id, got {value!r}")
    return quote(value, safe="")


class _Resource:
    def __init__(self, base: BaseClient) -> None:
        self._base = base


class Backends(_Resource):
    """ComfyUI instances registered to the account."""

    def list(self, *, timeout: Timeout | None = None) -> list[Backend]:
        data = self._base.request("GET", "/v1/backends", timeout=timeout)
        return [Backend.model_validate(item) for item in data or []]

    def register(self, instance_id: str, *, timeout: Timeout | None = None) -> Backend:
        _segment(instance_id)
        # Registering twice is harmless on the service, so a retry cannot do damage.
        data = self._base.request(
            "POST",
            "/v1/backends",
            json={"instance_id": instance_id},
            timeout=timeout,
            idempotent=True,
        )
        return Backend.model_validate(data or {"name": instance_id})

    def get(self, name: str, *, timeout: Timeout | None = None) -> Backend:
        data = self._base.request("GET", f"/v1/backends/{_segment(name)}", timeout=timeout)
        return Backend.model_validate(data)

    def set_state(
        self, name: str, state: Literal["up", "down"], *, timeout: Timeout | None = None
    ) -> Backend | None:
        if state not in ("up", "down"):
            raise InputValidationError(f"state must be 'up' or 'down', not {state!r}")
        data = self._base.request(
            "PATCH", f"/v1/backends/{_segment(name)}", json={"state": state}, timeout=timeout
        )
        return Backend.model_validate(data) if isinstance(data, Mapping) else None

    def delete(self, name: str, *, timeout: Timeout | None = None) -> None:
        self._base.request("DELETE", f"/v1/backends/{_segment(name)}", timeout=timeout)


class Workflows(_Resource):
    """Registered ComfyUI API-format workflows with their declared inputs and outputs."""

    @staticmethod
    def _spec(
        name: str,
        workflow: Mapping[str, Any],
        outputs: Sequence[str],
        inputs: Sequence[WorkflowInput | Mapping[str, Any]],
    ) -> dict[str, Any]:
        spec = _validate(
            WorkflowSpec,
            {"name": name, "workflow": workflow, "outputs": list(outputs), "inputs": list(inputs)},
        )
        return spec.model_dump(mode="json")

    def create(
        self,
        *,
        name: str,
        workflow: Mapping[str, Any],
        outputs: Sequence[str],
        inputs: Sequence[WorkflowInput | Mapping[str, Any]] = (),
        timeout: Timeout | None = None,
    ) -> Workflow:
        body = self._spec(name, workflow, outputs, inputs)
        data = self._base.request(
            "POST", "/v1/workflows", json=body, timeout=timeout, idempotent=False
        )
        reply = dict(data) if isinstance(data, Mapping) else {"id": data}
        return Workflow.model_validate({**body, **reply})

    def list(self, *, timeout: Timeout | None = None) -> list[Workflow]:
        data = self._base.request("GET", "/v1/workflows", timeout=timeout)
        return [Workflow.model_validate(item) for item in data or []]

    def get(self, workflow_id: str, *, timeout: Timeout | None = None) -> Workflow:
        data = self._base.request("GET", f"/v1/workflows/{_segment(workflow_id)}", timeout=timeout)
        return Workflow.model_validate(data)

    def update(
        self,
        workflow_id: str,
        *,
        name: str,
        workflow: Mapping[str, Any],
        outputs: Sequence[str],
        inputs: Sequence[WorkflowInput | Mapping[str, Any]] = (),
        timeout: Timeout | None = None,
    ) -> Workflow:
        body = self._spec(name, workflow, outputs, inputs)
        data = self._base.request(
            "PATCH", f"/v1/workflows/{_segment(workflow_id)}", json=body, timeout=timeout
        )
        reply = dict(data) if isinstance(data, Mapping) else {}
        return Workflow.model_validate({**body, **reply, "id": workflow_id})

    def delete(self, workflow_id: str, *, timeout: Timeout | None = None) -> None:
        self._base.request("DELETE", f"/v1/workflows/{_segment(workflow_id)}", timeout=timeout)


class Files(_Resource):
    """Input uploads and result downloads."""

    def upload(
        self,
        file: str | os.PathLike[str] | IO[bytes],
        *,
        filename: str | None = None,
        timeout: Timeout | None = None,
    ) -> UploadedFile:
        """Upload a path or a binary file object; the result's ``path`` feeds an image input."""
        if isinstance(file, str | os.PathLike):
            path = Path(file)
            content = path.read_bytes()
            name = filename or path.name
        else:
            # Read it whole: a retry after a refused connection must send the same bytes again.
            content = file.read()
            name = filename or Path(getattr(file, "name", "upload.bin") or "upload.bin").name
        data = self._base.request(
            "POST",
            "/v1/files",
            files={"file": (name, content, "application/octet-stream")},
            timeout=timeout,
            idempotent=False,
        )
        return UploadedFile.model_validate(data)

    def read(self, url: str, *, timeout: Timeout | None = None) -> bytes:
        """The bytes of a result URL (sent with the API key, as the service requires)."""
        content: bytes = self._base.request("GET", url, timeout=timeout, raw=True)
        return content

    def download(
        self, url: str, dest: str | os.PathLike[str], *, timeout: Timeout | None = None
    ) -> Path:
        """Save a result URL to ``dest``: a file path, or an existing folder (name from the URL)."""
        target = Path(dest)
        if target.is_dir() or str(dest).endswith(("/", os.sep)):
            name = unquote(Path(urlsplit(url).path).name) or "result"
            target = target / name
        content = self.read(url, timeout=timeout)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        partial.write_bytes(content)
        partial.replace(target)  # never leave a truncated file under the final name
        return target


_DROPPED = object()


class Prompts(_Resource):
    """Tasks: submit, follow, cancel, and the high-level :meth:`run`."""

    def __init__(
        self, base: BaseClient, files: Files, realtime: Callable[..., RealtimeClient]
    ) -> None:
        super().__init__(base)
        self._files = files
        self._realtime = realtime

    def submit(
        self,
        workflow_id: str,
        inputs: Inputs | None = None,
        *,
        free_cache: bool | None = None,
        free_gpu: bool | None = None,
        backend: str | None = None,
        timeout: Timeout | None = None,
    ) -> str:
        """Submit a task and return its id. Never retried once the request may have arrived."""
        body = _validate(
            SubmitRequest,
            {
                "workflow_id": workflow_id,
                "inputs": _task_inputs(inputs),
                "free_cache": free_cache,
                "free_gpu": free_gpu,
                "backend": backend,
            },
        ).model_dump(mode="json", exclude_none=True)
        data = self._base.request(
            "POST", "/v1/prompts", json=body, timeout=timeout, idempotent=False
        )
        return self._task_id(data)

    def run_workflow(
        self,
        workflow: Mapping[str, Any],
        outputs: Sequence[str],
        inputs: Inputs | None = None,
        *,
        timeout: Timeout | None = None,
    ) -> str:
        """Run an unregistered graph (``POST /v1/prompts_workflow``); returns the task id."""
        if not isinstance(workflow, Mapping) or not workflow:
            raise InputValidationError("workflow must be a non-empty mapping of node id -> node")
        outs = [str(node) for node in outputs]
        if not outs:
            raise InputValidationError("outputs must name at least one node")
        body: dict[str, Any] = {"workflow": dict(workflow), "outputs": outs}
        if inputs:
            body["inputs"] = [item.model_dump(mode="json") for item in _task_inputs(inputs)]
        data = self._base.request(
            "POST", "/v1/prompts_workflow", json=body, timeout=timeout, idempotent=False
        )
        return self._task_id(data)

    def status(self, task_id: str, *, timeout: Timeout | None = None) -> TaskStatus:
        data = self._base.request("GET", f"/v1/prompts/{_segment(task_id)}/status", timeout=timeout)
        return TaskStatus.model_validate(data)

    def cancel(self, task_id: str, *, timeout: Timeout | None = None) -> None:
        # Cancelling twice is harmless, so this POST may be retried.
        self._base.request(
            "POST", f"/v1/prompts/{_segment(task_id)}/cancel", timeout=timeout, idempotent=True
        )

    @staticmethod
    def _task_id(data: Any) -> str:
        task_id = task_id_from(data)
        if task_id is None:
            raise APIResponseError(
                "the submit reply carries no task id", code=-1, msg=f"data={data!r:.200}"
            )
        return task_id

    def run(
        self,
        workflow_id: str,
        inputs: Inputs | None = None,
        *,
        free_cache: bool | None = None,
        free_gpu: bool | None = None,
        backend: str | None = None,
        on_progress: Callable[[Event], None] | None = None,
        timeout: float = c.DEFAULT_RUN_TIMEOUT,
        poll_interval: float = c.DEFAULT_POLL_INTERVAL,
        cancel_on_timeout: bool = False,
        use_websocket: bool = True,
    ) -> TaskResult:
        """Submit a task, follow it to the end and return its result.

        Events come over one WebSocket; if it cannot connect or drops, the status endpoint is
        polled every ``poll_interval`` seconds instead. ``on_progress`` gets every typed event
        on the calling thread. After ``timeout`` seconds the task is cancelled (if
        ``cancel_on_timeout``) and :class:`TaskTimeoutError` is raised; a failed or cancelled
        task raises :class:`TaskFailedError`.
        """
        deadline = time.monotonic() + timeout
        events: queue.Queue[Any] = queue.Queue()
        stream: RealtimeClient | None = None
        if use_websocket:
            stream = self._realtime(max_reconnects=0)
            # Queue every event of the account: frames may beat the submit reply, so the
            # task id is matched by the consumer, not here.
            stream.add_listener(events.put)
            stream.on_disconnect(lambda: events.put(_DROPPED))
            stream.start()
            # Connect before submitting so no early event is missed on a healthy socket.
            stream.wait_connected(min(self._base.timeout[0], max(0.0, timeout)))
        try:
            task_id = self.submit(
                workflow_id, inputs, free_cache=free_cache, free_gpu=free_gpu, backend=backend
            )
            return self._follow(
                task_id,
                events=events,
                socket_up=stream is not None and stream.connected,
                deadline=deadline,
                timeout=timeout,
                poll_interval=poll_interval,
                on_progress=on_progress,
                cancel_on_timeout=cancel_on_timeout,
            )
        finally:
            if stream is not None:
                stream.close()

    def _follow(
        self,
        task_id: str,
        *,
        events: queue.Queue[Any],
        socket_up: bool,
        deadline: float,
        timeout: float,
        poll_interval: float,
        on_progress: Callable[[Event], None] | None,
        cancel_on_timeout: bool,
    ) -> TaskResult:
        # Poll once right away: the task may have finished before any frame could reach us.
        status = self._poll(task_id)
        if status is not None and status.is_terminal:
            return self._result(task_id, status)
        if not socket_up:
            _log.debug("task %s: no websocket, polling every %.2f s", task_id, poll_interval)
        last_poll = time.monotonic()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._expire(task_id, timeout, cancel_on_timeout)
            since_poll = time.monotonic() - last_poll
            if socket_up:
                # Even with a healthy socket, poll now and then in case a frame was lost.
                safety = max(poll_interval, c.RUN_SAFETY_POLL_INTERVAL)
                item: Any = None
                if since_poll < safety:
                    try:
                        item = events.get(timeout=min(remaining, safety - since_poll))
                    except queue.Empty:
                        item = None
                if item is _DROPPED:
                    _log.info("task %s: websocket dropped, falling back to polling", task_id)
                    socket_up = False
                    continue
                if item is not None:
                    if item.task_id == task_id:
                        if on_progress is not None:
                            on_progress(item)
                        if isinstance(item, FinishedEvent | ErrorEvent):
                            return self._finish(task_id, item, deadline, poll_interval)
                    continue
            else:
                time.sleep(max(0.0, min(remaining, poll_interval - since_poll)))
            status = self._poll(task_id)
            last_poll = time.monotonic()
            if status is not None and status.is_terminal:
                return self._result(task_id, status)

    def _poll(self, task_id: str) -> TaskStatus | None:
        try:
            return self.status(task_id)
        except APIConnectionError as exc:
            # A blip while following must not lose a running task; the deadline still applies.
            _log.info("task %s: status poll failed (%s); will retry", task_id, exc)
            return None

    def _finish(
        self, task_id: str, event: FinishedEvent | ErrorEvent, deadline: float, poll_interval: float
    ) -> TaskResult:
        # The terminal frame may precede the status update by a moment: poll until terminal.
        while True:
            status = self._poll(task_id)
            if status is not None and status.is_terminal:
                if isinstance(event, ErrorEvent) and status.status == TaskState.FINISHED:
                    status = status.model_copy(
                        update={"status": TaskState.FAILED, "message": event.message}
                    )
                return self._result(task_id, status)
            if time.monotonic() >= deadline:
                message = event.message if isinstance(event, ErrorEvent) else None
                if isinstance(event, FinishedEvent) and event.success:
                    raise TaskTimeoutError(task_id)
                raise TaskFailedError(task_id, message=message)
            time.sleep(min(poll_interval, 0.1))

    def _result(self, task_id: str, status: TaskStatus) -> TaskResult:
        if status.status == TaskState.FINISHED:
            result = TaskResult(
                task_id=task_id,
                status=status.status,
                images=status.images,
                cost_time=status.cost_time,
            )
            result._files = self._files
            return result
        raise TaskFailedError(
            task_id,
            node=status.error_node,
            message=status.message,
            status=status.status.value,
        )

    def _expire(self, task_id: str, timeout: float, cancel: bool) -> TaskResult:
        cancelled = False
        if cancel:
            try:
                self.cancel(task_id)
                cancelled = True
            except ComfyOneError as exc:
                _log.warning("task %s: cancel after timeout failed: %s", task_id, exc)
        raise TaskTimeoutError(task_id, timeout=timeout, cancelled=cancelled)
