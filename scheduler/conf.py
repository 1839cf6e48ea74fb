"""The app's settings: one `SCHEDULER` dict in the site's settings, read only through here.

SCHEDULER = {
    "PERMISSION_CLASSES": [...],      # dotted paths; default: read needs a user, write staff
    "AUTHENTICATION_CLASSES": [...],  # dotted paths; default: DRF token, then session
    "POLICIES": [...],                # extra policy classes, dotted paths
    "DEFAULT_POLICY": "all_active",   # used by an app that has no stored policy
}
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

DEFAULTS: dict[str, Any] = {
    "PERMISSION_CLASSES": ["scheduler.permissions.ReadAuthenticatedWriteStaff"],
    "AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "POLICIES": [],
    "DEFAULT_POLICY": "all_active",
}

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
            value = self.user_settings.get(name, DEFAULTS[name])
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
