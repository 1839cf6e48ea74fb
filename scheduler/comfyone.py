"""The ComfyOne client of this process, built from `scheduler.conf` settings."""

from __future__ import annotations

import threading

from django.core.exceptions import ImproperlyConfigured

from comfyone_sdk import ComfyOne
from scheduler.conf import scheduler_settings

_local = threading.local()


def comfyone_client() -> ComfyOne:
    """One client per thread: each keeps its own keep-alive connection pool."""
    client: ComfyOne | None = getattr(_local, "client", None)
    key = (
        scheduler_settings.COMFYONE_API_KEY,
        scheduler_settings.COMFYONE_BASE_URL,
        scheduler_settings.COMFYONE_WS_URL,
    )
    if client is None or getattr(_local, "key", None) != key:
        if not key[0]:
            raise ImproperlyConfigured("Set COMFYONE_API_KEY to submit tasks to ComfyOne.")
        if client is not None:
            client.close()
        client = ComfyOne(
            key[0],
            base_url=key[1],
            ws_url=key[2],
            timeout=scheduler_settings.COMFYONE_TIMEOUT,
        )
        _local.client, _local.key = client, key
    return client
