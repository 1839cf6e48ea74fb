"""Writes: registering and changing backends, setting policies, and selection.

Selection is a write too: it advances the app's rotation state in the same transaction that
reads the candidates, under a row lock, so every server process shares one rotation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from scheduler.exceptions import HostTaken, NameTaken, NoBackendAvailable
from scheduler.models import AppPolicy, Backend, BackendStatus
from scheduler.selectors import policy_resolve

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
    with transaction.atomic():
        row = AppPolicy.objects.select_for_update().filter(app_id=app_id).first()
        policy, limit = policy_resolve(row=row)
        if row is None and policy.stateful:
            # A site whose DEFAULT_POLICY keeps state: the state needs a row to live in.
            AppPolicy.objects.bulk_create(
                [AppPolicy(app_id=app_id, policy=policy.name)], ignore_conflicts=True
            )
            row = AppPolicy.objects.select_for_update().get(app_id=app_id)
        candidates = list(
            Backend.objects.filter(app_id=app_id, status=BackendStatus.ACTIVE).order_by(
                "created", "id"
            )
        )
        if not candidates:
            raise NoBackendAvailable(f"App {app_id!r} has no active backend.")
        state = row.state if row is not None else {}
        selection = policy.select(candidates, limit=limit, state=state)
        if policy.stateful and row is not None and selection.state != state:
            AppPolicy.objects.filter(pk=app_id).update(state=selection.state)
    return SelectionResult(
        app_id=app_id, policy=policy.name, limit=limit, backends=selection.backends
    )
