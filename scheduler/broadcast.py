"""Thread-safe `group_send` for services, and the channel-layer group names of tasks.

Services run in worker threads (HTTP requests, the relay), while WebSocket consumers run on
the server's event loop. The in-memory layer keeps `asyncio.Queue`s that only that loop's own
thread may touch, so its sends are handed to the loop the consumers run on (registered when a
socket connects); sends to Redis go through one long-lived loop of their own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)

ALL_TASKS_GROUP = "tasks"
SEND_TIMEOUT = 5.0

_consumer_loop: asyncio.AbstractEventLoop | None = None
_sender_loop: asyncio.AbstractEventLoop | None = None
_sender_lock = threading.Lock()


def user_tasks_group(user_id: Any) -> str:
    return f"tasks.user.{user_id}"


def task_group(task_pk: uuid.UUID | str) -> str:
    return f"task.{uuid.UUID(str(task_pk)).hex}"


def _network_sender_loop() -> asyncio.AbstractEventLoop:
    """One event loop on a daemon thread for sends to a network layer (Redis): the layer's
    connections live as long as the loop, where `async_to_sync` would make a new loop, and
    so a new connection, for every send (about 5 ms each)."""
    global _sender_loop
    with _sender_lock:
        if _sender_loop is None or _sender_loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="group-send", daemon=True).start()
            _sender_loop = loop
        return _sender_loop


def register_consumer_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Called by consumers on connect: the loop that in-memory sends must run on."""
    global _consumer_loop
    _consumer_loop = loop


async def _send_all(layer: Any, groups: Iterable[str], message: dict[str, Any]) -> None:
    for group in groups:
        await layer.group_send(group, message)


def group_send(groups: Iterable[str], message: dict[str, Any]) -> None:
    """Send `message` to every group from synchronous code in any thread; never raises."""
    layer = get_channel_layer()
    if layer is None:
        return
    groups = list(groups)
    try:
        if isinstance(layer, InMemoryChannelLayer):
            loop = _consumer_loop
            if loop is None or loop.is_closed():
                return  # no socket ever connected to this process: nobody to tell
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                loop.create_task(_send_all(layer, groups, message))
            else:
                future = asyncio.run_coroutine_threadsafe(_send_all(layer, groups, message), loop)
                future.result(timeout=SEND_TIMEOUT)
        else:
            loop = _network_sender_loop()
            future = asyncio.run_coroutine_threadsafe(_send_all(layer, groups, message), loop)
            future.result(timeout=SEND_TIMEOUT)
    except Exception:
        # A broadcast is best effort: the database row is the truth, and sockets get a full
        # snapshot when they reconnect. Never fail the write that triggered it.
        logger.exception("group_send to %s failed", groups)
