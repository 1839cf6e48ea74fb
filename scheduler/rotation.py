"""The selection transaction in plain SQL: the hot path of `GET /v1/{app_id}/select`.

It runs on every selection, so it skips the ORM's query compilation (about 0.2 ms a query
on these machines) and builds its three statements once per database connection vendor.
Column values still go through Django's own converters, so rows come back exactly as the
ORM would return them.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections

from scheduler.models import AppPolicy, Backend, BackendStatus

BACKEND_COLUMNS = ("id", "app_id", "name", "host", "weight", "status", "created", "updated")

# Threads of one process take the selection's database lock in turn here (see services).
selection_lock = threading.Lock()
_lock_files: dict[str, int] = {}


@contextmanager
def selection_turn(using: str = "default") -> Iterator[None]:
    """Wait for this process's and (on a SQLite file) every process's turn to select.

    Processes sharing a SQLite file would otherwise queue on SQLite's busy handler, which
    polls with sleeps of up to 100 ms; a kernel file lock wakes the next one at once.
    PostgreSQL queues on the row lock itself, which also wakes at once.
    """
    with selection_lock:
        connection = connections[using]
        name = str(connection.settings_dict["NAME"])
        if connection.vendor != "sqlite" or name == ":memory:" or "mode=memory" in name:
            yield
            return
        if name not in _lock_files:
            _lock_files[name] = os.open(f"{name}.select-lock", os.O_RDWR | os.O_CREAT, 0o600)
        fd = _lock_files[name]
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


class _Statements:
    def __init__(self, alias: str) -> None:
        connection = connections[alias]
        qn = connection.ops.quote_name
        policy_table, backend_table = qn(AppPolicy._meta.db_table), qn(Backend._meta.db_table)
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        self.active_backends = (
            f"SELECT {', '.join(qn(c) for c in BACKEND_COLUMNS)} FROM {backend_table} "
            f"WHERE {qn('app_id')} = %s AND {qn('status')} = %s "
            f"ORDER BY {qn('created')}, {qn('id')}"
        )
        self.save_state = f"UPDATE {policy_table} SET {qn('state')} = %s WHERE {qn('app_id')} = %s"
        # The policy row (locked) and the active backends in one round trip. On PostgreSQL it
        # also turns off the commit's disk flush for this transaction (set_config(..., true)
        # is SET LOCAL): the rotation cursor is not worth a flush per selection; after a
        # crash the rotation at worst repeats a backend.
        no_flush = (
            "set_config('synchronous_commit', 'off', true), "
            if connection.vendor == "postgresql"
            else ""
        )
        backend_columns = ", ".join(f"b.{qn(c)}" for c in BACKEND_COLUMNS)
        lock_of = " FOR UPDATE OF p" if lock else ""
        self.policy_and_backends = (
            f"SELECT {no_flush}p.{qn('policy')}, p.{qn('limit')}, p.{qn('state')}, "
            f"{backend_columns} FROM {policy_table} p LEFT JOIN {backend_table} b "
            f"ON b.{qn('app_id')} = p.{qn('app_id')} AND b.{qn('status')} = %s "
            f"WHERE p.{qn('app_id')} = %s ORDER BY b.{qn('created')}, b.{qn('id')}{lock_of}"
        )
        self.skip = 1 if no_flush else 0
        self.state_field = AppPolicy._meta.get_field("state")
        self.state_converters = self._converters(connection, AppPolicy, self.state_field)
        self.backend_converters = [
            self._converters(connection, Backend, Backend._meta.get_field(column))
            for column in BACKEND_COLUMNS
        ]

    @staticmethod
    def _converters(connection: Any, model: type, field: Any) -> list[Any]:
        column = field.get_col(model._meta.db_table)
        return [*connection.ops.get_db_converters(column), *field.get_db_converters(connection)]


_statements: dict[str, _Statements] = {}


def _for(alias: str) -> _Statements:
    if alias not in _statements:
        _statements[alias] = _Statements(alias)
    return _statements[alias]


def _convert(value: Any, converters: list[Any], connection: Any) -> Any:
    for converter in converters:
        value = converter(value, None, connection)
    return value


def active_backends(*, app_id: str, using: str = "default") -> list[Backend]:
    """The app's active backends, oldest first, as model instances."""
    statements, connection = _for(using), connections[using]
    with connection.cursor() as cursor:
        cursor.execute(statements.active_backends, [app_id, BackendStatus.ACTIVE.value])
        rows = cursor.fetchall()
    converters = statements.backend_converters
    return [
        Backend.from_db(
            using,
            BACKEND_COLUMNS,
            [
                _convert(value, conv, connection)
                for value, conv in zip(row, converters, strict=True)
            ],
        )
        for row in rows
    ]


def policy_and_backends(
    *, app_id: str, using: str = "default"
) -> tuple[AppPolicy | None, list[Backend]]:
    """The app's policy row, locked for the rest of the transaction, and its active backends
    oldest first, in one query; `(None, backends)` for an app without a stored policy."""
    statements, connection = _for(using), connections[using]
    with connection.cursor() as cursor:
        cursor.execute(statements.policy_and_backends, [BackendStatus.ACTIVE.value, app_id])
        rows = cursor.fetchall()
    if not rows:
        return None, active_backends(app_id=app_id, using=using)
    first = rows[0][statements.skip :]
    policy, limit, state = first[:3]
    state = _convert(state, statements.state_converters, connection)
    row = AppPolicy(app_id=app_id, policy=policy, limit=limit, state=state or {})
    converters = statements.backend_converters
    backends = [
        Backend.from_db(
            using,
            BACKEND_COLUMNS,
            [
                _convert(value, conv, connection)
                for value, conv in zip(values[statements.skip + 3 :], converters, strict=True)
            ],
        )
        for values in rows
        if values[statements.skip + 3] is not None  # the LEFT JOIN's row for no backend
    ]
    return row, backends


def state_save(*, app_id: str, state: dict[str, Any], using: str = "default") -> None:
    statements, connection = _for(using), connections[using]
    value = statements.state_field.get_db_prep_value(state, connection)
    with connection.cursor() as cursor:
        cursor.execute(statements.save_state, [value, app_id])
