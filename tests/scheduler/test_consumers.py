"""WebSocket consumers through Channels' WebsocketCommunicator: authentication, origin,
snapshot first, then one frame per change carrying the task's full state."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.authtoken.models import Token

from comfyone_sdk import PendingEvent, ProgressEvent
from scheduler import services
from scheduler.models import Task
from scheduler.routing import websocket_application

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


@database_sync_to_async
def make_user(name: str, *, staff: bool) -> tuple[str, str]:
    """A user's token key and session cookie."""
    user = get_user_model().objects.create_user(name, is_staff=staff)
    client = Client()
    client.force_login(user)
    return Token.objects.create(user=user).key, client.cookies["sessionid"].value


@database_sync_to_async
def make_task(task_id: str, *, owner: str | None = None, status: str = "pending") -> Task:
    user = get_user_model().objects.get(username=owner) if owner else None
    return Task.objects.create(
        task_id=task_id,
        app_id="txt2img",
        backend_host="inst-1",
        workflow_id="wf_1",
        submitted_by=user,
        status=status,
    )


@database_sync_to_async
def apply(event) -> None:
    services.task_apply_event(event=event)


def communicator(path: str, *headers: tuple[bytes, bytes]) -> WebsocketCommunicator:
    return WebsocketCommunicator(websocket_application(), path, headers=list(headers))


async def test_anonymous_is_refused():
    ws = communicator("/ws/tasks/", ORIGIN)
    connected, _ = await ws.connect()
    assert not connected  # a real server answers the handshake with HTTP 403


async def test_bad_token_is_refused():
    await make_user("staff", staff=True)
    ws = communicator("/ws/tasks/", (b"authorization", b"Token wrong"))
    connected, _ = await ws.connect()
    assert not connected


async def test_session_cookie_with_allowed_origin_connects():
    _, session = await make_user("staff", staff=True)
    ws = communicator("/ws/tasks/", ORIGIN, (b"cookie", f"sessionid={session}".encode()))
    connected, _ = await ws.connect()
    assert connected
    assert (await ws.receive_json_from())["type"] == "snapshot"
    await ws.disconnect()


async def test_session_cookie_from_a_foreign_origin_is_refused():
    _, session = await make_user("staff", staff=True)
    ws = communicator(
        "/ws/tasks/",
        (b"origin", b"http://evil.example"),
        (b"cookie", f"sessionid={session}".encode()),
    )
    connected, _ = await ws.connect()
    assert not connected


async def test_session_cookie_without_origin_is_refused():
    # No Origin means no browser; a cookie alone must not authenticate such a client.
    _, session = await make_user("staff", staff=True)
    ws = communicator("/ws/tasks/", (b"cookie", f"sessionid={session}".encode()))
    connected, _ = await ws.connect()
    assert not connected


async def test_token_without_origin_connects():
    token, _ = await make_user("staff", staff=True)
    ws = communicator("/ws/tasks/", (b"authorization", f"Token {token}".encode()))
    connected, _ = await ws.connect()
    assert connected
    await ws.disconnect()


async def test_snapshot_then_every_change_in_order():
    token, _ = await make_user("staff", staff=True)
    await make_task("old", status="finished")
    await make_task("t1")
    ws = communicator("/ws/tasks/", (b"authorization", f"Token {token}".encode()))
    await ws.connect()
    snapshot = await ws.receive_json_from()
    assert snapshot["type"] == "snapshot"
    assert [t["task_id"] for t in snapshot["tasks"]] == ["t1", "old"]
    await apply(PendingEvent(task_id="t1", position=3))
    await apply(PendingEvent(task_id="t1", position=1))
    await apply(ProgressEvent(task_id="t1", percent=40))
    frames = [await ws.receive_json_from() for _ in range(3)]
    assert [f["type"] for f in frames] == ["task"] * 3
    states = [
        (f["task"]["status"], f["task"]["queue_position"], f["task"]["progress"]) for f in frames
    ]
    assert states == [("pending", 3, 0), ("pending", 1, 0), ("running", None, 40)]
    assert frames[-1]["task"]["started"] is not None
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_single_task_socket_sees_only_that_task():
    token, _ = await make_user("staff", staff=True)
    await make_task("mine")
    await make_task("other")
    ws = communicator("/ws/tasks/mine/", (b"authorization", f"Token {token}".encode()))
    assert (await ws.connect())[0]
    snapshot = await ws.receive_json_from()
    assert [t["task_id"] for t in snapshot["tasks"]] == ["mine"]
    await apply(ProgressEvent(task_id="other", percent=10))
    await apply(ProgressEvent(task_id="mine", percent=20))
    frame = await ws.receive_json_from()
    assert (frame["task"]["task_id"], frame["task"]["progress"]) == ("mine", 20)
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_unknown_task_socket_is_refused():
    token, _ = await make_user("staff", staff=True)
    ws = communicator("/ws/tasks/nope/", (b"authorization", f"Token {token}".encode()))
    assert not (await ws.connect())[0]


async def test_non_staff_sees_only_their_own_tasks():
    token, _ = await make_user("reader", staff=False)
    await make_user("boss", staff=True)
    await make_task("theirs", owner="boss")
    await make_task("own", owner="reader")
    ws = communicator("/ws/tasks/", (b"authorization", f"Token {token}".encode()))
    await ws.connect()
    assert [t["task_id"] for t in (await ws.receive_json_from())["tasks"]] == ["own"]
    await apply(ProgressEvent(task_id="theirs", percent=50))
    await apply(ProgressEvent(task_id="own", percent=60))
    frame = await ws.receive_json_from()
    assert frame["task"]["task_id"] == "own"
    assert await ws.receive_nothing(timeout=0.2)
    other = communicator("/ws/tasks/theirs/", (b"authorization", f"Token {token}".encode()))
    assert not (await other.connect())[0]
    await ws.disconnect()


async def test_ping_pong():
    token, _ = await make_user("staff", staff=True)
    ws = communicator("/ws/tasks/", (b"authorization", f"Token {token}".encode()))
    await ws.connect()
    await ws.receive_json_from()
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from() == {"type": "pong"}
    await ws.disconnect()
