"""The app's settings: one `SCHEDULER` dict in the site's settings, read only through here.

SCHEDULER = {
    "PERMISSION_CLASSES": [...],      # dotted paths; default: read needs a user, write staff
    "AUTHENTICATION_CLASSES": [...],  # dotted paths; default: DRF token, then session
    "POLICIES": [...],                # extra policy classes, dotted paths
    "DEFAULT_POLICY": "all_active",   # used by an app that has no stored policy
}
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

DEFAULTS: dict[str, Any] = {
    "PERMISSION_CLASSES": ["scheduler.permissions.ReadAuthenticatedWriteStaff"],
    "AUTHENTICATION_CLASSES": [
        "scheduler.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "TOKEN_CACHE_SECONDS": 5.0,
    "POLICIES": [],
    "DEFAULT_POLICY": "all_active",
    "COMFYONE_API_KEY": None,
    "COMFYONE_BASE_URL": None,
    "COMFYONE_WS_URL": None,
    "COMFYONE_TIMEOUT": 10.0,
    "BACKEND_REFUSED_CODES": [2007, 2008],
    "RELAY": None,
    "RELAY_LEASE_SECONDS": 15.0,
    "RELAY_RECONCILE_SECONDS": 30.0,
    "DASHBOARD_WEBSOCKET_URL": "",
}

RELAY_MODES = ("embedded", "external", "off")


def _env_default(name: str) -> Any:
    """Defaults that come from the environment, read when first used (not at import)."""
    if name in {"COMFYONE_API_KEY", "COMFYONE_BASE_URL", "COMFYONE_WS_URL"}:
        return os.environ.get(name) or None
    if name == "RELAY":
        mode = os.environ.get("COMFYONE_RELAY", "").strip().lower()
        if mode:
            return mode
        layer = getattr(settings, "CHANNEL_LAYERS", {}).get("default", {}).get("BACKEND", "")
        # The in-memory layer reaches only this process, so the relay must live here too.
        return "embedded" if layer.endswith("InMemoryChannelLayer") else "external"
    return DEFAULTS[name]


# Settings holding dotted paths, imported on first access.
IMPORT_STRINGS = {"PERMISSION_CLASSES", "AUTHENTICATION_CLASSES", "POLICIES"}


class SchedulerSettings:
    """Attribute access to `settings.SCHEDULER` merged over `DEFAULTS`, cached per name."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        return getattr(settings, "SCHEDULER", None) or {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown SCHEDULER setting: {name!r}")
        if name not in self._cache:
            value = self.user_settings.get(name)
            if value is None:
                value = _env_default(name)
            if name in IMPORT_STRINGS:
                value = [import_string(path) if isinstance(path, str) else path for path in value]
            self._cache[name] = value
        return self._cache[name]

    def reload(self) -> None:
        self._cache.clear()


scheduler_settings = SchedulerSettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "SCHEDULER":
        scheduler_settings.reload()
        from scheduler import policies

        policies.registry.reload()


setting_changed.connect(_reload)
