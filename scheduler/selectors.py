"""Reads: backends, policies and tasks as the API, the admin and the dashboard show them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from scheduler.conf import scheduler_settings
from scheduler.exceptions import BackendNotFound, TaskNotFound
from scheduler.models import OPEN_STATUSES, AppPolicy, Backend, Task
from scheduler.policies import Policy, registry


@dataclass(frozen=True)
class ResolvedPolicy:
    """An app's effective policy: the stored one, or the default for an app without one."""

    app_id: str
    policy: str
    limit: int


BACKEND_FIELDS = ("id", "app_id", "name", "host", "weight", "status", "created", "updated")


def backend_list(*, app_id: str | None = None, status: str | None = None) -> QuerySet[Any]:
    """Backends as plain rows (dicts of `BACKEND_FIELDS`), oldest first."""
    backends = Backend.objects.all()
    if app_id is not None:
        backends = backends.filter(app_id=app_id)
    if status is not None:
        backends = backends.filter(status=status)
    return backends.order_by("created", "id").values(*BACKEND_FIELDS)


def backend_get(*, app_id: str, backend_id: str | uuid.UUID) -> Backend:
    try:
        pk = backend_id if isinstance(backend_id, uuid.UUID) else uuid.UUID(str(backend_id))
    except ValueError:
        raise BackendNotFound(f"backend_id {str(backend_id)!r} is not a valid UUID.") from None
    backend = Backend.objects.filter(app_id=app_id, pk=pk).first()
    if backend is None:
        raise BackendNotFound(f"No backend with id {pk} in app {app_id!r}.")
    return backend


def policy_resolve(*, row: AppPolicy | None) -> tuple[Policy, int]:
    """The policy object and effective limit for a stored row (or the default without one)."""
    policy = registry.get(row.policy) if row is not None else None
    if policy is None:
        # No row, or a row naming a policy the site has since removed from its settings.
        policy = registry.get(scheduler_settings.DEFAULT_POLICY) or registry.get("all_active")
    assert policy is not None
    limit = row.limit if row is not None and row.limit is not None else policy.default_limit
    return policy, limit


def policy_get(*, app_id: str) -> ResolvedPolicy:
    row = AppPolicy.objects.filter(app_id=app_id).first()
    policy, limit = policy_resolve(row=row)
    return ResolvedPolicy(app_id=app_id, policy=policy.name, limit=limit)


def policy_list() -> list[Policy]:
    return registry.all()


# --- tasks ----------------------------------------------------------------------------------


def task_visible(*, user: Any) -> QuerySet[Task]:
    """The tasks a user may see: staff see every task, others the ones they submitted."""
    tasks = Task.objects.all()
    if not getattr(user, "is_authenticated", False):
        return tasks.none()
    return tasks if user.is_staff else tasks.filter(submitted_by=user)


def task_list(*, user: Any, app_id: str | None = None, status: str | None = None) -> QuerySet[Task]:
    tasks = task_visible(user=user)
    if app_id is not None:
        tasks = tasks.filter(app_id=app_id)
    if status is not None:
        tasks = tasks.filter(status=status)
    return tasks.order_by("-created", "-id")


def task_get(*, user: Any, task_id: str) -> Task:
    task = task_visible(user=user).filter(task_id=task_id).first()
    if task is None:
        raise TaskNotFound(f"No task with task_id {task_id!r}.")
    return task


def task_snapshot(*, user: Any, recent: int = 50) -> list[Task]:
    """What a dashboard socket starts from: every open task and the latest ones."""
    visible = task_visible(user=user)
    open_tasks = list(visible.filter(status__in=OPEN_STATUSES).order_by("-created", "-id"))
    latest = list(visible.order_by("-created", "-id")[:recent])
    seen = {t.pk for t in open_tasks}
    merged = open_tasks + [t for t in latest if t.pk not in seen]
    return sorted(merged, key=lambda t: (t.created, t.pk), reverse=True)


def dashboard_apps() -> dict[str, list[Backend]]:
    """Every app's backends, for the dashboard: app id -> backends oldest first."""
    apps: dict[str, list[Backend]] = {}
    for backend in Backend.objects.order_by("app_id", "created", "id"):
        apps.setdefault(backend.app_id, []).append(backend)
    return apps
