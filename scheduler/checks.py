"""System checks for the `SCHEDULER` setting: bad values are reported at start-up."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register
from django.utils.module_loading import import_string

from scheduler.conf import DEFAULTS, IMPORT_STRINGS, RELAY_MODES


@register()
def check_scheduler_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors: list[Error] = []
    user = getattr(settings, "SCHEDULER", None) or {}
    if not isinstance(user, dict):
        return [Error("SCHEDULER must be a dict.", id="scheduler.E001")]
    for key in sorted(set(user) - set(DEFAULTS)):
        errors.append(
            Error(
                f"Unknown SCHEDULER key {key!r}.",
                hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                id="scheduler.E002",
            )
        )
    for key in sorted(IMPORT_STRINGS & set(user)):
        value = user[key]
        if not isinstance(value, list | tuple):
            errors.append(Error(f"SCHEDULER[{key!r}] must be a list.", id="scheduler.E003"))
            continue
        for path in value:
            try:
                if isinstance(path, str):
                    import_string(path)
            except ImportError as exc:
                errors.append(
                    Error(f"SCHEDULER[{key!r}]: cannot import {path!r}: {exc}", id="scheduler.E004")
                )
    relay = user.get("RELAY")
    if relay is not None and relay not in RELAY_MODES:
        errors.append(
            Error(
                f"SCHEDULER['RELAY'] must be one of {', '.join(RELAY_MODES)}, not {relay!r}.",
                id="scheduler.E007",
            )
        )
    codes = user.get("BACKEND_REFUSED_CODES", [])
    if not isinstance(codes, list | tuple) or not all(isinstance(c, int) for c in codes):
        errors.append(
            Error(
                "SCHEDULER['BACKEND_REFUSED_CODES'] must be a list of integers.",
                id="scheduler.E008",
            )
        )
    for key in (
        "COMFYONE_TIMEOUT",
        "RELAY_LEASE_SECONDS",
        "RELAY_RECONCILE_SECONDS",
        "TOKEN_CACHE_SECONDS",
    ):
        value = user.get(key, DEFAULTS[key])
        zero_ok = key == "TOKEN_CACHE_SECONDS"
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or value < 0
            or (value == 0 and not zero_ok)
        ):
            errors.append(
                Error(
                    f"SCHEDULER[{key!r}] must be a positive number of seconds.", id="scheduler.E009"
                )
            )
    if not errors:
        from scheduler.policies import Policy, registry

        for cls in user.get("POLICIES", []):
            cls = import_string(cls) if isinstance(cls, str) else cls
            if not (isinstance(cls, type) and issubclass(cls, Policy)):
                errors.append(
                    Error(
                        f"SCHEDULER['POLICIES']: {cls!r} is not a scheduler.policies.Policy.",
                        id="scheduler.E005",
                    )
                )
        default = user.get("DEFAULT_POLICY", DEFAULTS["DEFAULT_POLICY"])
        if not errors and default not in registry.names():
            errors.append(
                Error(
                    f"SCHEDULER['DEFAULT_POLICY'] {default!r} is not a registered policy.",
                    hint=f"Registered: {', '.join(registry.names())}.",
                    id="scheduler.E006",
                )
            )
    return errors
