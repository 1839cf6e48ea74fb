"""``prompts.run()``: through the socket, through polling after a drop, timeouts, failures."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from comfyone_sdk import (
    ComfyOne,
    ErrorEvent,
    FinishedEvent,
    InternalServerError,
    PendingEvent,
    ProgressEvent,
    TaskFailedError,
    TaskResult,
    TaskState,
    TaskTimeoutError,
)
from comfyone_sdk import _constants as c
from comfyone_sdk.models import Event
from tests.support.comfyone_server import FakeComfyOne, png_bytes

from .conftest import API_KEY, GRAPH


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _status_polls(server: FakeComfyOne) -> int:
    return sum(1 for m, p, _ in server.requests if m == "GET" and p.endswith("/status"))


def test_run_through_the_socket(
    server: FakeComfyOne, client: ComfyOne, workflow_id: str, tmp_path: Path
) -> None:
    events: list[Event] = []
    result = client.prompts.run(
        workflow_id, {"5": {"width": 64}}, on_progress=events.append, timeout=10, poll_interval=5
    )
    assert isinstance(result, TaskResult)
    assert result.status is TaskState.FINISHED
    assert result.cost_time == server.cost_time_ms
    assert result.images == server.tasks[result.task_id].images
    assert [e.position for e in events if isinstance(e, PendingEvent)] == [1, 0]
    assert [e.percent for e in events if isinstance(e, ProgressEvent)] == [0, 25, 50, 75, 100]
    assert events[-1] == FinishedEvent(task_id=result.task_id, success=True)
    # One socket, and only the initial and the final status call: events did the rest.
    assert server.sockets_opened == 1
    assert _status_polls(server) == 2
    assert server.count("POST", "/v1/prompts") == 1
    files = result.download(tmp_path / "out")
    assert [f.read_bytes() for f in files] == [png_bytes()]
    assert server.wait_for_sockets(0)


def test_run_polls_without_websocket(
    server: FakeComfyOne, client: ComfyOne, workflow_id: str
) -> None:
    result = client.prompts.run(workflow_id, use_websocket=False, timeout=10, poll_interval=0.02)
    assert result.status is TaskState.FINISHED
    assert server.sockets_opened == 0
    assert _status_polls(server) >= 2


def test_run_falls_back_to_polling_when_socket_is_unreachable(
    server: FakeComfyOne, workflow_id: str
) -> None:
    with ComfyOne(
        API_KEY, base_url=server.base_url, ws_url=f"ws://127.0.0.1:{_closed_port()}/v1/ws"
    ) as client:
        result = client.prompts.run(workflow_id, timeout=10, poll_interval=0.02)
    assert result.status is TaskState.FINISHED


def test_run_falls_back_to_polling_after_a_drop(
    server: FakeComfyOne, client: ComfyOne, workflow_id: str
) -> None:
    server.hold()
    events: list[Event] = []
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = client.prompts.run(
                workflow_id, on_progress=events.append, timeout=10, poll_interval=0.02
            )
        except Exception as exc:  # surfaced by the assertion below
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 5
    while not any(isinstance(e, PendingEvent) and e.position == 0 for e in events):
        assert time.monotonic() < deadline, "no pending event arrived"
        time.sleep(0.01)
    server.drop_sockets()
    polls_before = _status_polls(server)
    time.sleep(0.1)
    server.release()
    worker.join(10)
    result = outcome.get("result")
    assert isinstance(result, TaskResult), outcome
    assert result.status is TaskState.FINISHED
    assert _status_polls(server) > polls_before + 1  # it kept polling after the drop
    assert server.sockets_opened == 1  # run() never opens a second socket


def test_run_sees_a_task_that_finished_before_any_frame() -> None:
    # Events go to another server, so only the poll right after subscribing can see the end.
    with (
        FakeComfyOne(api_key=API_KEY, step_delay=0, queue_frames=0, progress_steps=()) as fast,
        FakeComfyOne(api_key=API_KEY) as silent,
        ComfyOne(API_KEY, base_url=fast.base_url, ws_url=silent.ws_url) as client,
    ):
        client.backends.register("inst-1")
        wf = client.workflows.create(name="w", workflow=GRAPH, outputs=["9"]).id
        started = time.monotonic()
        result = client.prompts.run(wf, timeout=10, poll_interval=10)
        assert result.status is TaskState.FINISHED
        assert time.monotonic() - started < 2  # not the 5 s safety poll
        assert silent.sockets_opened == 1


def test_safety_poll_catches_a_lost_terminal_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(c, "RUN_SAFETY_POLL_INTERVAL", 0.05)
    with (
        FakeComfyOne(api_key=API_KEY, step_delay=0.01) as server,
        FakeComfyOne(api_key=API_KEY) as silent,
        ComfyOne(API_KEY, base_url=server.base_url, ws_url=silent.ws_url) as client,
    ):
        client.backends.register("inst-1")
        wf = client.workflows.create(name="w", workflow=GRAPH, outputs=["9"]).id
        result = client.prompts.run(wf, timeout=10, poll_interval=0.01)
        assert result.status is TaskState.FINISHED


def test_run_times_out(server: FakeComfyOne, client: ComfyOne, workflow_id: str) -> None:
    server.hold()
    started = time.monotonic()
    with pytest.raises(TaskTimeoutError) as info:
        client.prompts.run(workflow_id, timeout=0.3, poll_interval=0.05)
    assert 0.3 <= time.monotonic() - started < 3
    task_id = info.value.task_id
    assert not info.value.cancelled
    assert server.tasks[task_id].status == "pendding"  # left alone
    assert server.count("POST", f"/v1/prompts/{task_id}/cancel") == 0


def test_run_cancels_on_timeout_when_asked(
    server: FakeComfyOne, client: ComfyOne, workflow_id: str
) -> None:
    server.hold()
    with pytest.raises(TaskTimeoutError) as info:
        client.prompts.run(
            workflow_id,
            timeout=0.3,
            poll_interval=0.05,
            cancel_on_timeout=True,
            use_websocket=False,
        )
    assert info.value.cancelled
    assert server.tasks[info.value.task_id].status == "cancel"


def test_failed_task_raises_with_node_and_message(
    server: FakeComfyOne, client: ComfyOne, workflow_id: str
) -> None:
    server.fail_next_task(node="9", message="CUDA out of memory")
    events: list[Event] = []
    with pytest.raises(TaskFailedError) as info:
        client.prompts.run(workflow_id, on_progress=events.append, timeout=10)
    assert info.value.node == "9"
    assert info.value.message == "CUDA out of memory"
    assert info.value.status == "failed"
    assert any(isinstance(e, ErrorEvent) and e.message == "CUDA out of memory" for e in events)


def test_failed_task_raises_when_polling(
    server: FakeComfyOne, client: ComfyOne, workflow_id: str
) -> None:
    server.fail_next_task(node="6", message="bad prompt")
    with pytest.raises(TaskFailedError, match="at node 6: bad prompt"):
        client.prompts.run(workflow_id, use_websocket=False, poll_interval=0.02, timeout=10)


def test_cancelled_task_raises(server: FakeComfyOne, client: ComfyOne, workflow_id: str) -> None:
    server.hold()
    timer = threading.Timer(0.2, lambda: client.prompts.cancel(next(iter(server.tasks))))
    timer.start()
    with pytest.raises(TaskFailedError) as info:
        client.prompts.run(workflow_id, timeout=10, poll_interval=0.05)
    timer.join()
    assert info.value.status == "cancelled"


def test_run_never_retries_submission(
    server: FakeComfyOne, client: ComfyOne, sleeps: list[float], workflow_id: str
) -> None:
    server.fail_next("/v1/prompts", 503, method="POST")
    with pytest.raises(InternalServerError):
        client.prompts.run(workflow_id, timeout=5)
    assert server.count("POST", "/v1/prompts") == 1
    assert server.tasks == {} and sleeps == []
