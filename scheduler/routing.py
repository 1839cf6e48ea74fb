"""WebSocket routes of the app, and the authenticated, origin-checked application for them."""

from __future__ import annotations

from typing import Any

from channels.routing import URLRouter
from django.urls import path

from scheduler.consumers import TaskConsumer
from scheduler.middleware import websocket_auth_stack

websocket_urlpatterns = [
    path("ws/tasks/", TaskConsumer.as_asgi()),
    path("ws/tasks/<str:task_id>/", TaskConsumer.as_asgi()),
]


def websocket_application() -> Any:
    return websocket_auth_stack(URLRouter(websocket_urlpatterns))
