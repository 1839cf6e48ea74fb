"""Reads: backends and policies as the API and the admin show them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import QuerySet

from scheduler.conf import scheduler_settings
from scheduler.exceptions import BackendNotFound
from scheduler.models import AppPolicy, Backend
from scheduler.policies import Policy, registry


@dataclass(frozen=True)
class ResolvedPolicy:
    """An app's effective policy: the stored one, or the default for an app without one."""

    app_id: str
    policy: str
    limit: int


def backend_list(*, app_id: str | None = None, status: str | None = None) -> QuerySet[Backend]:
    backends = Backend.objects.all()
    if app_id is not None:
        backends = backends.filter(app_id=app_id)
    if status is not None:
        backends = backends.filter(status=status)
    return backends.order_by("created", "id")


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
