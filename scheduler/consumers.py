"""WebSocket consumers: live task state for the dashboard and other clients.

On connect a socket gets a snapshot first, then one frame per change, each carrying the
task's full current state, so a client that missed a frame is never wrong.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from scheduler import broadcast, selectors
from scheduler.exceptions import TaskNotFound
from scheduler.serializers import task_to_dict


@database_sync_to_async
def _snapshot(user: Any) -> list[dict[str, Any]]:
    return [task_to_dict(task) for task in selectors.task_snapshot(user=user)]


@database_sync_to_async
def _one(user: Any, task_id: str) -> dict[str, Any] | None:
    try:
        return task_to_dict(selectors.task_get(user=user, task_id=task_id))
    except TaskNotFound:
        return None


class TaskConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/tasks/` (every task the user may see) and `/ws/tasks/<task_id>/` (one task)."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()  # before accept: the handshake is refused with 403
            return
        broadcast.register_consumer_loop(asyncio.get_running_loop())
        task_id = self.scope["url_route"]["kwargs"].get("task_id")
        if task_id is not None:
            task = await _one(user, task_id)
            if task is None:
                await self.close()
                return
            self.task_groups = [broadcast.task_group(task["id"])]
        elif user.is_staff:
            self.task_groups = [broadcast.ALL_TASKS_GROUP]
        else:
            self.task_groups = [broadcast.user_tasks_group(user.pk)]
        # Join before reading the snapshot: a change in between arrives after the snapshot
        # as a frame with the full state, so nothing is lost.
        for group in self.task_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        if task_id is not None:
            task = await _one(user, task_id)
            await self.send_json({"type": "snapshot", "tasks": [task] if task else []})
        else:
            await self.send_json({"type": "snapshot", "tasks": await _snapshot(user)})

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "task_groups", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The protocol is server -> client; a ping from the client gets a pong.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message["type"] == "task.update":
            # Channels wraps every handler in a thread hop that closes stale database
            # connections; this one touches no database, and with 200 sockets per event the
            # hop was over half the server's cost per frame (bench/results/ws_fanout.md).
            await self.task_update(message)
            return
        await super().dispatch(message)

    async def task_update(self, event: dict[str, Any]) -> None:
        # Serialised once by the publisher, not once per socket.
        await self.send(text_data=event["text"])
