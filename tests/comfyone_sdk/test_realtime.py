"""The WebSocket client: auth, typed events, listener isolation, reconnects, clean close."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator

import pytest

from comfyone_sdk import ComfyOne, FinishedEvent, PendingEvent, ProgressEvent, RealtimeClient
from comfyone_sdk.models import Event
from comfyone_sdk.realtime import reconnect_delay, ws_url_from_base
from tests.support.comfyone_server import FakeComfyOne

from .conftest import API_KEY


def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def stream(client: ComfyOne) -> Iterator[RealtimeClient]:
    rt = client.realtime(backoff_base=0.01, backoff_cap=0.05, ping_interval=5)
    yield rt
    rt.close()


def test_ws_url_from_base() -> None:
    assert ws_url_from_base("https://h.example") == "wss://h.example/v1/ws"
    assert ws_url_from_base("http://127.0.0.1:81/") == "ws://127.0.0.1:81/v1/ws"


def test_auth_and_events_of_a_task(
    server: FakeComfyOne, client: ComfyOne, stream: RealtimeClient, workflow_id: str
) -> None:
    events: list[Event] = []
    stream.add_listener(events.append)
    stream.start()
    assert stream.wait_connected(5)
    assert _until(lambda: server.auth_frames == [{"type": "auth", "token": API_KEY}])
    task_id = client.prompts.submit(workflow_id)
    assert _until(lambda: any(isinstance(e, FinishedEvent) for e in events))
    assert {e.task_id for e in events} == {task_id}
    pending = [e.position for e in events if isinstance(e, PendingEvent)]
    progress = [e.percent for e in events if isinstance(e, ProgressEvent)]
    assert pending == [1, 0]
    assert progress == [0, 25, 50, 75, 100]
    assert isinstance(events[-1], FinishedEvent) and events[-1].success


def test_listener_exception_and_malformed_frames_do_not_kill_it(
    server: FakeComfyOne, stream: RealtimeClient, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    stream.add_listener(broken)
    stream.add_listener(received.append)
    stream.start()
    assert stream.wait_connected(5)
    server.send_raw("{not json")
    server.send_raw(json.dumps({"type": "mystery", "taskId": "x"}))
    server.emit("t1", "progress", {"process": 10})
    server.emit("t1", "progress", {"process": 20})
    assert _until(lambda: len(received) == 2)
    assert [e.percent for e in received] == [10, 20]
    assert stream.connected and stream.connections == 1
    assert "listener bug" in caplog.text or "raised" in caplog.text
    assert "ignored websocket frame" in caplog.text


def test_reconnects_after_a_drop_and_calls_hooks(
    server: FakeComfyOne, stream: RealtimeClient
) -> None:
    connects: list[float] = []
    disconnects: list[float] = []
    stream.on_connect(lambda: connects.append(time.monotonic()))
    stream.on_disconnect(lambda: disconnects.append(time.monotonic()))
    received: list[Event] = []
    stream.add_listener(received.append)
    stream.start()
    assert stream.wait_connected(5)
    server.drop_sockets()
    assert _until(lambda: len(connects) == 2 and stream.connected)
    assert len(disconnects) == 1
    assert server.sockets_opened == 2
    assert server.wait_for_sockets(1)
    server.emit("t9", "finished", {"success": True})
    assert _until(lambda: received == [FinishedEvent(task_id="t9", success=True)])


def test_max_reconnects_bounds_the_retries(server: FakeComfyOne, client: ComfyOne) -> None:
    rt = client.realtime(max_reconnects=0)
    rt.start()
    assert rt.wait_connected(5)
    server.drop_sockets()
    assert _until(lambda: not rt.running)
    assert server.sockets_opened == 1
    rt.close()


def test_wrong_key_is_refused_and_not_retried(server: FakeComfyOne) -> None:
    rt = RealtimeClient("wrong", url=server.ws_url, backoff_base=0.01)
    rt.start()
    assert not rt.wait_connected(5)
    assert _until(lambda: not rt.running)
    assert getattr(rt.last_error, "status_code", None) == 401
    assert server.sockets_opened == 0
    rt.close()


def test_unreachable_server_keeps_trying_until_closed() -> None:
    rt = RealtimeClient("k", url="ws://127.0.0.1:9/v1/ws", backoff_base=0.01, backoff_cap=0.02)
    with rt:
        assert not rt.wait_connected(0.3)
        assert rt.running  # still reconnecting
    assert not rt.running


def test_close_joins_the_thread(server: FakeComfyOne, stream: RealtimeClient) -> None:
    with stream:
        assert stream.wait_connected(5)
        thread = stream._thread
        assert thread is not None and thread.daemon and thread.is_alive()
    assert not thread.is_alive() and not stream.connected
    assert _until(lambda: server.socket_count == 0)
    assert API_KEY not in repr(stream)


def test_reconnect_delay_is_capped_with_jitter() -> None:
    for attempt in range(12):
        ceiling = min(2.0, 0.1 * 2**attempt)
        assert ceiling / 2 <= reconnect_delay(attempt, base=0.1, cap=2.0) <= ceiling


def test_debug_logs_never_contain_the_key(
    server: FakeComfyOne, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with RealtimeClient(API_KEY, url=server.ws_url) as rt:
        assert rt.wait_connected(5)
        server.send_raw("garbage")
        server.emit("t1", "progress", {"process": 5})
        time.sleep(0.05)
    refused = RealtimeClient("wrong-" + API_KEY, url=server.ws_url)
    with refused:
        assert _until(lambda: not refused.running)
    assert "ignored websocket frame" in caplog.text
    assert API_KEY not in caplog.text
