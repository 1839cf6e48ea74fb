"""Writes: backends, policies, selection, and tasks with their broadcasts.

Selection is a write too: it advances the app's rotation state in the same transaction that
reads the candidates, under a row lock, so every server process shares one rotation. Every
change to a task is published to the channel layer once its transaction commits.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from comfyone_sdk import (
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    ComfyOne,
    ComfyOneError,
    ErrorEvent,
    InputValidationError,
    NotFoundError,
    PendingEvent,
    ProgressEvent,
    TaskEvent,
)
from comfyone_sdk import TaskState as ComfyTaskState
from comfyone_sdk import TaskStatus as ComfyTaskStatus
from scheduler import broadcast, rotation
from scheduler.broadcast import ALL_TASKS_GROUP, task_group, user_tasks_group
from scheduler.comfyone import comfyone_client
from scheduler.conf import scheduler_settings
from scheduler.exceptions import (
    ComfyOneNotConfigured,
    HostTaken,
    NameTaken,
    NoBackendAvailable,
    TaskAlreadyFinished,
    TaskNotFound,
    UpstreamError,
)
from scheduler.models import (
    OPEN_STATUSES,
    TERMINAL_STATUSES,
    AppPolicy,
    Backend,
    BackendStatus,
    Task,
    TaskStatus,
)
from scheduler.selectors import policy_resolve
from scheduler.serializers import task_to_dict

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SelectionResult:
    app_id: str
    policy: str
    limit: int
    backends: list[Backend]


def _raise_conflict(*, app_id: str, name: str, host: str, exclude_pk: Any = None) -> None:
    """Name which uniqueness rule a failed write broke (the database decided; we explain)."""
    others = Backend.objects.exclude(pk=exclude_pk) if exclude_pk else Backend.objects.all()
    if others.filter(host=host).exists():
        raise HostTaken(f"host {host!r} is already registered to another backend.")
    if others.filter(app_id=app_id, name=name).exists():
        raise NameTaken(f"name {name!r} is already taken in app {app_id!r}.")


def _save(backend: Backend, *, update_fields: list[str] | None = None) -> Backend:
    try:
        with transaction.atomic():
            backend.save(update_fields=update_fields)
    except IntegrityError:
        _raise_conflict(
            app_id=backend.app_id,
            name=backend.name,
            host=backend.host,
            exclude_pk=None if backend._state.adding else backend.pk,
        )
        raise
    return backend


def backend_register(
    *,
    app_id: str,
    name: str,
    host: str,
    weight: int = 1,
    status: str = BackendStatus.ACTIVE,
) -> Backend:
    backend = Backend(app_id=app_id, name=name, host=host, weight=weight, status=status)
    _save(backend)
    logger.info("backend registered: %s (%s) in %s", backend.name, backend.pk, app_id)
    return backend


def backend_update(*, backend: Backend, **fields: Any) -> Backend:
    """Change any of `app_id`, `name`, `host`, `weight`, `status` (409 on a uniqueness clash)."""
    allowed = {"app_id", "name", "host", "weight", "status"}
    unknown = set(fields) - allowed
    if unknown:
        raise TypeError(f"backend_update() got unexpected fields: {sorted(unknown)}")
    changed = [name for name, value in fields.items() if getattr(backend, name) != value]
    if not changed:
        return backend
    for name in changed:
        setattr(backend, name, fields[name])
    _save(backend, update_fields=[*changed, "updated"])
    logger.info("backend %s changed: %s", backend.pk, ", ".join(changed))
    return backend


def backend_set_status(*, backend: Backend, status: str) -> Backend:
    return backend_update(backend=backend, status=status)


def backend_set_weight(*, backend: Backend, weight: int) -> Backend:
    return backend_update(backend=backend, weight=weight)


def backend_move(*, backend: Backend, new_app_id: str) -> Backend:
    return backend_update(backend=backend, app_id=new_app_id)


def backend_delete(*, backend: Backend) -> None:
    pk = backend.pk
    backend.delete()
    logger.info("backend deleted: %s", pk)


def policy_set(*, app_id: str, policy: str, limit: int | None = None) -> AppPolicy:
    """Store an app's policy; a change of policy starts its rotation afresh."""
    with transaction.atomic():
        row = AppPolicy.objects.select_for_update().filter(app_id=app_id).first()
        if row is None:
            row = AppPolicy.objects.create(app_id=app_id, policy=policy, limit=limit)
        else:
            if row.policy != policy:
                row.state = {}
            row.policy, row.limit = policy, limit
            row.save()
    return row


def backend_select(*, app_id: str) -> SelectionResult:
    """Select the app's backends by its policy, advancing the shared rotation atomically."""
    # Threads of one process take turns here before the database lock (SQLite's write
    # lock, PostgreSQL's row lock): the lock holder then does not wait for the GIL behind
    # its siblings between round trips, and SQLite's busy handler never sleeps.
    with rotation.selection_turn():
        return _select(app_id)


def _select(app_id: str) -> SelectionResult:
    with transaction.atomic():
        row, candidates = rotation.policy_and_backends(app_id=app_id)
        policy, limit = policy_resolve(row=row)
        if row is None and policy.stateful:
            # A site whose DEFAULT_POLICY keeps state: the state needs a row to live in.
            AppPolicy.objects.bulk_create(
                [AppPolicy(app_id=app_id, policy=policy.name)], ignore_conflicts=True
            )
            row, candidates = rotation.policy_and_backends(app_id=app_id)
        if not candidates:
            raise NoBackendAvailable(f"App {app_id!r} has no active backend.")
        state = row.state if row is not None else {}
        selection = policy.select(candidates, limit=limit, state=state)
        if policy.stateful and row is not None and selection.state != state:
            rotation.state_save(app_id=app_id, state=selection.state)
    return SelectionResult(
        app_id=app_id, policy=policy.name, limit=limit, backends=selection.backends
    )


# --- tasks ----------------------------------------------------------------------------------


def task_publish(*, task: Task) -> None:
    """Tell every socket watching this task its full current state."""
    groups = [ALL_TASKS_GROUP, task_group(task.pk)]
    if task.submitted_by_id is not None:
        groups.append(user_tasks_group(task.submitted_by_id))
    frame = json.dumps({"type": "task", "task": task_to_dict(task)}, separators=(",", ":"))
    broadcast.group_send(groups, {"type": "task.update", "text": frame})


def _publish_on_commit(task: Task) -> None:
    transaction.on_commit(lambda: task_publish(task=task))


def task_submit(
    *,
    app_id: str,
    workflow_id: str,
    inputs: list[dict[str, Any]],
    free_cache: bool | None = None,
    free_gpu: bool | None = None,
    user: Any = None,
    client: ComfyOne | None = None,
) -> Task:
    """Select a backend by the app's policy and submit the task to ComfyOne pinned to it.

    A backend that ComfyOne refuses as unknown or down is skipped for the selection's next
    one; any other refusal is a 502 carrying ComfyOne's code and message.
    """
    selection = backend_select(app_id=app_id)
    try:
        client = client or comfyone_client()
    except ImproperlyConfigured as exc:
        raise ComfyOneNotConfigured() from exc
    refused: list[str] = []
    last: APIResponseError | None = None
    for backend in selection.backends:
        try:
            task_id = client.prompts.submit(
                workflow_id, inputs, free_cache=free_cache, free_gpu=free_gpu, backend=backend.host
            )
        except APIResponseError as exc:
            if exc.code not in scheduler_settings.BACKEND_REFUSED_CODES:
                raise UpstreamError(
                    f"ComfyOne refused the task: {exc.msg}",
                    upstream_code=exc.code,
                    upstream_msg=exc.msg,
                ) from exc
            logger.warning("ComfyOne refused backend %s (%s): %s", backend.name, exc.code, exc.msg)
            refused.append(backend.name)
            last = exc
            continue
        except InputValidationError as exc:
            raise ValidationError({"inputs": [str(exc)]}) from exc
        except APIStatusError as exc:
            raise UpstreamError(
                f"ComfyOne answered HTTP {exc.status_code}.", upstream_msg=str(exc)
            ) from exc
        except APIConnectionError as exc:
            raise UpstreamError(f"ComfyOne could not be reached: {exc}") from exc
        with transaction.atomic():
            task = Task.objects.create(
                task_id=task_id,
                app_id=app_id,
                backend=backend,
                backend_host=backend.host,
                workflow_id=workflow_id,
                inputs=inputs,
                free_cache=free_cache,
                free_gpu=free_gpu,
                submitted_by=user if getattr(user, "is_authenticated", False) else None,
            )
            _publish_on_commit(task)
        logger.info("task %s submitted to %s for app %s", task_id, backend.name, app_id)
        return task
    assert last is not None
    raise UpstreamError(
        f"ComfyOne refused every selected backend ({', '.join(refused)}): {last.msg}",
        upstream_code=last.code,
        upstream_msg=last.msg,
    )


def _save_task(task: Task, fields: set[str], before: str) -> Task:
    if fields:
        task.save(update_fields=[*sorted(fields), "updated"])
        if task.status != before:
            logger.info("task %s: %s -> %s", task.task_id, before, task.status)
        _publish_on_commit(task)
    return task


def task_apply_event(*, event: TaskEvent) -> Task | None:
    """Apply one real-time event; None for a task that is not ours or has already ended.

    Events only move a task forward: a late `pending` never undoes `running`, and progress
    never goes down, whatever order frames arrive in.
    """
    with transaction.atomic():
        task = Task.objects.select_for_update().filter(task_id=event.task_id).first()
        if task is None or task.is_terminal:
            return None
        before, fields = task.status, set()
        now = timezone.now()
        if isinstance(event, PendingEvent):
            if task.status == TaskStatus.PENDING and task.queue_position != event.position:
                task.queue_position = event.position
                fields.add("queue_position")
        elif isinstance(event, ProgressEvent):
            if task.status != TaskStatus.RUNNING:
                task.status, task.queue_position = TaskStatus.RUNNING, None
                task.started = task.started or now
                fields |= {"status", "queue_position", "started"}
            percent = max(0, min(100, int(event.percent)))
            if percent > task.progress:
                task.progress = percent
                fields.add("progress")
        elif isinstance(event, ErrorEvent):
            task.status, task.error_message, task.finished = TaskStatus.FAILED, event.message, now
            task.queue_position = None
            fields |= {"status", "error_message", "finished", "queue_position"}
        # A `finished` with success false comes for a cancel as well as for a failure (whose
        # `error` frame has already ended the task): the status the relay polls right after
        # it says which, so it changes nothing here.
        return _save_task(task, fields, before)


_STATES = {
    ComfyTaskState.PENDING: TaskStatus.PENDING,
    ComfyTaskState.RUNNING: TaskStatus.RUNNING,
    ComfyTaskState.FINISHED: TaskStatus.FINISHED,
    ComfyTaskState.FAILED: TaskStatus.FAILED,
    ComfyTaskState.CANCELLED: TaskStatus.CANCELLED,
}


def task_apply_status(*, task_id: str, status: ComfyTaskStatus) -> Task | None:
    """Apply the status endpoint's answer (results, cost, failure details)."""
    new = _STATES.get(status.status)
    with transaction.atomic():
        task = Task.objects.select_for_update().filter(task_id=task_id).first()
        if task is None or new is None:
            return task
        before, fields = task.status, set()
        now = timezone.now()
        if task.is_terminal and not (task.status == new == TaskStatus.FAILED):
            return task
        if new == TaskStatus.RUNNING and task.status == TaskStatus.PENDING:
            task.status, task.started, task.queue_position = new, task.started or now, None
            fields |= {"status", "started", "queue_position"}
        elif new in TERMINAL_STATUSES:
            task.status, task.queue_position = new, None
            task.finished = task.finished or now
            fields |= {"status", "queue_position", "finished"}
            if new == TaskStatus.FINISHED:
                task.progress, task.images = 100, list(status.images)
                task.cost_time = None if status.cost_time is None else round(status.cost_time)
                fields |= {"progress", "images", "cost_time"}
            if new == TaskStatus.FAILED:
                task.error_node = str(status.error_node or task.error_node or "")
                task.error_message = status.message or task.error_message
                fields |= {"error_node", "error_message"}
        return _save_task(task, fields, before)


def task_mark_lost(*, task_id: str, reason: str) -> Task | None:
    """ComfyOne no longer knows the task (it keeps tasks 3 days): end it as failed."""
    with transaction.atomic():
        task = Task.objects.select_for_update().filter(task_id=task_id).first()
        if task is None or task.is_terminal:
            return task
        before = task.status
        task.status, task.error_message, task.finished = TaskStatus.FAILED, reason, timezone.now()
        task.queue_position = None
        return _save_task(task, {"status", "error_message", "finished", "queue_position"}, before)


def task_cancel(*, task: Task, client: ComfyOne | None = None) -> Task:
    if task.is_terminal:
        raise TaskAlreadyFinished(f"Task {task.task_id} has already ended ({task.status}).")
    try:
        client = client or comfyone_client()
        client.prompts.cancel(task.task_id)
    except ImproperlyConfigured as exc:
        raise ComfyOneNotConfigured() from exc
    except APIResponseError as exc:
        raise UpstreamError(
            f"ComfyOne refused to cancel: {exc.msg}", upstream_code=exc.code, upstream_msg=exc.msg
        ) from exc
    except ComfyOneError as exc:
        raise UpstreamError(f"ComfyOne could not cancel the task: {exc}") from exc
    with transaction.atomic():
        task = Task.objects.select_for_update().get(pk=task.pk)
        if task.is_terminal:
            return task
        before = task.status
        task.status, task.finished, task.queue_position = TaskStatus.CANCELLED, timezone.now(), None
        return _save_task(task, {"status", "finished", "queue_position"}, before)


def task_reconcile(*, client: ComfyOne, task_ids: list[str] | None = None) -> int:
    """Poll the status of open tasks and apply it, so no terminal state is ever missed.

    Returns how many tasks were polled. Errors for one task are logged and skipped.
    """
    if task_ids is None:
        task_ids = list(
            Task.objects.filter(status__in=OPEN_STATUSES).values_list("task_id", flat=True)
        )
    for task_id in task_ids:
        try:
            task_apply_status(task_id=task_id, status=client.prompts.status(task_id))
        except NotFoundError:
            task_mark_lost(task_id=task_id, reason="ComfyOne no longer knows this task.")
        except ComfyOneError as exc:
            logger.warning("reconcile: status of %s failed: %s", task_id, exc)
    return len(task_ids)


def task_image_read(*, task: Task, index: int, client: ComfyOne | None = None) -> bytes:
    """A result image's bytes, fetched with this site's ComfyOne key (never the browser's)."""
    if not 0 <= index < len(task.images):
        raise TaskNotFound(f"Task {task.task_id} has no image {index}.")
    try:
        client = client or comfyone_client()
        return client.files.read(task.images[index])
    except ImproperlyConfigured as exc:
        raise ComfyOneNotConfigured() from exc
    except ComfyOneError as exc:
        raise UpstreamError(f"ComfyOne could not serve the image: {exc}") from exc
