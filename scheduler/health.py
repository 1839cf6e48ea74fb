"""Health endpoints for load balancers: `/healthz` (the process answers) and `/readyz`
(the database and the channel layer answer too). Plain Django views: no auth, no DRF."""

from __future__ import annotations

import logging
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

logger = logging.getLogger(__name__)

CHANNEL_CHECK_TIMEOUT = 2.0


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database_ok() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def _layer_roundtrip(layer: object) -> None:
    import asyncio

    channel = await layer.new_channel()  # type: ignore[attr-defined]
    token = uuid.uuid4().hex
    await layer.send(channel, {"type": "readyz.ping", "token": token})  # type: ignore[attr-defined]
    message = await asyncio.wait_for(layer.receive(channel), CHANNEL_CHECK_TIMEOUT)  # type: ignore[attr-defined]
    if message.get("token") != token:
        raise RuntimeError("the channel layer returned another message")


def _channel_layer_ok() -> str | None:
    layer = get_channel_layer()
    if layer is None:
        return "no channel layer is configured"
    try:
        async_to_sync(_layer_roundtrip)(layer)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database_ok(), "channel_layer": _channel_layer_ok()}
    ready = all(problem is None for problem in checks.values())
    if not ready:
        logger.warning("not ready: %s", {k: v for k, v in checks.items() if v})
    body = {
        "status": "ok" if ready else "unavailable",
        "checks": {name: problem or "ok" for name, problem in checks.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)
