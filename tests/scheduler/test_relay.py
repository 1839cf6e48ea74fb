"""The relay against a real loopback ComfyOne server: events become task rows and frames,
a dropped socket or malformed frames lose nothing, and one relay at a time holds the lease."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from comfyone_sdk import ComfyOne
from scheduler import services
from scheduler.exceptions import TaskAlreadyFinished
from scheduler.models import Backend, Lease, Task
from scheduler.relay import LEASE_NAME, Relay, lease_acquire
from scheduler.routing import websocket_application
from tests.livesite import ROOT, LiveSite

pytestmark = pytest.mark.django_db(transaction=True)

FAST_RECONNECT = {"backoff_base": 0.05, "backoff_cap": 0.2, "ping_interval": 0}


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def task_status(task_id: str) -> str:
    return Task.objects.get(task_id=task_id).status


class RunningRelay:
    def __init__(self, relay: Relay) -> None:
        self.relay, self.stop = relay, threading.Event()
        self.thread = threading.Thread(target=relay.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Relay:
        self.thread.start()
        assert self.relay.active.wait(10), "the relay never became active"
        return self.relay

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def client(fake_comfyone, comfyone_settings) -> Iterator[ComfyOne]:
    with ComfyOne("test-key", base_url=fake_comfyone.base_url) as c:
        yield c


@pytest.fixture
def backend(make_backend, comfyone_settings) -> Backend:
    return make_backend(name="one", host="inst-1")


def make_relay(client: ComfyOne, **kwargs) -> Relay:
    return Relay(
        client=client,
        lease_seconds=1.0,
        reconcile_seconds=30,
        realtime_options=FAST_RECONNECT,
        **kwargs,
    )


def submit(fake) -> str:
    return services.task_submit(app_id="txt2img", workflow_id=fake.workflow_id, inputs=[]).task_id


def test_task_runs_to_finished_with_results(client, backend, fake_comfyone):
    with RunningRelay(make_relay(client)) as relay:
        assert fake_comfyone.wait_for_sockets(1)
        task_id = submit(fake_comfyone)
        assert wait_for(lambda: task_status(task_id) == "finished")
    task = Task.objects.get(task_id=task_id)
    assert task.progress == 100 and task.cost_time == 1234
    assert task.images == fake_comfyone.tasks[task_id].images and task.images
    assert task.started is not None and task.finished >= task.started
    assert relay.events_applied >= 5


def test_failed_task_keeps_node_and_message(client, backend, fake_comfyone):
    fake_comfyone.fail_next_task(node="9", message="CUDA out of memory")
    with RunningRelay(make_relay(client)):
        assert fake_comfyone.wait_for_sockets(1)
        task_id = submit(fake_comfyone)
        assert wait_for(lambda: Task.objects.get(task_id=task_id).error_node == "9")
    task = Task.objects.get(task_id=task_id)
    assert (task.status, task.error_message) == ("failed", "CUDA out of memory")


def test_socket_dropped_mid_task_still_ends_finished(client, backend, fake_comfyone):
    fake_comfyone.step_delay = 0.05
    with RunningRelay(make_relay(client)) as relay:
        assert fake_comfyone.wait_for_sockets(1)
        fake_comfyone.hold()
        task_id = submit(fake_comfyone)
        assert wait_for(lambda: Task.objects.get(task_id=task_id).queue_position is not None)
        fake_comfyone.drop_sockets()
        # The task finishes while the relay is away: only the reconcile can see it.
        fake_comfyone.step_delay = 0.0
        fake_comfyone.release()
        assert wait_for(lambda: fake_comfyone.tasks[task_id].status == "finished")
        assert wait_for(lambda: task_status(task_id) == "finished")
        assert wait_for(lambda: fake_comfyone.socket_count == 1)
    assert Task.objects.get(task_id=task_id).images
    assert relay.client.ws_url == fake_comfyone.ws_url


def test_malformed_frames_are_ignored(client, backend, fake_comfyone, caplog):
    with RunningRelay(make_relay(client)):
        assert fake_comfyone.wait_for_sockets(1)
        for frame in [
            "not json",
            "[1, 2]",
            '{"type": "progress"}',
            b"\x00\x01binary",
            '{"type": "progress", "taskId": "unknown-task", "data": {"process": 5}}',
            '{"type": "teleport", "taskId": "x", "data": {}}',
        ]:
            fake_comfyone.send_raw(frame)
        task_id = submit(fake_comfyone)
        assert wait_for(lambda: task_status(task_id) == "finished")
        assert fake_comfyone.sockets_opened == 1  # the connection survived every bad frame
    assert not Task.objects.filter(task_id__in=["unknown-task", "x"]).exists()


def test_reconciles_tasks_that_ended_while_no_relay_ran(client, backend, fake_comfyone):
    task_id = submit(fake_comfyone)
    assert wait_for(lambda: fake_comfyone.tasks[task_id].status == "finished")
    assert task_status(task_id) == "pending"
    with RunningRelay(make_relay(client)):
        assert wait_for(lambda: task_status(task_id) == "finished")


def test_task_unknown_upstream_is_ended_as_failed(client, backend, fake_comfyone):
    Task.objects.create(
        task_id="expired", app_id="txt2img", backend_host="inst-1", workflow_id="wf"
    )
    with RunningRelay(make_relay(client)):
        assert wait_for(lambda: task_status("expired") == "failed")
    assert "no longer knows" in Task.objects.get(task_id="expired").error_message


def test_only_one_relay_holds_the_lease(client, backend, fake_comfyone):
    first, second = make_relay(client, holder="first"), make_relay(client, holder="second")
    with RunningRelay(first):
        stop = threading.Event()
        thread = threading.Thread(target=second.run, args=(stop,), daemon=True)
        thread.start()
        time.sleep(1.0)
        assert not second.active.is_set()
        assert fake_comfyone.socket_count == 1
        assert Lease.objects.get(name=LEASE_NAME).holder == "first"
    # The first released its lease on stop: the second takes over.
    assert second.active.wait(5)
    assert Lease.objects.get(name=LEASE_NAME).holder == "second"
    stop.set()
    thread.join(10)


def test_lease_of_a_dead_relay_expires():
    assert lease_acquire(name="x", holder="dead", seconds=0.2)
    assert not lease_acquire(name="x", holder="alive", seconds=5)
    time.sleep(0.3)
    assert lease_acquire(name="x", holder="alive", seconds=5)
    assert not lease_acquire(name="x", holder="dead", seconds=5)


@database_sync_to_async
def staff_token() -> str:
    user = get_user_model().objects.create_user("watcher", is_staff=True)
    return Token.objects.create(user=user).key


@pytest.mark.asyncio
async def test_browser_socket_sees_finished_after_a_drop(client, backend, fake_comfyone):
    """The relay's frames reach a WebSocket, and the last one says finished, drop or not."""
    fake_comfyone.step_delay = 0.05
    token = await staff_token()
    running = RunningRelay(make_relay(client))
    await database_sync_to_async(running.__enter__, thread_sensitive=False)()
    try:
        ws = WebsocketCommunicator(
            websocket_application(),
            "/ws/tasks/",
            headers=[(b"authorization", f"Token {token}".encode())],
        )
        assert (await ws.connect())[0]
        assert (await ws.receive_json_from())["type"] == "snapshot"
        fake_comfyone.hold()
        task_id = await database_sync_to_async(submit)(fake_comfyone)
        first = await ws.receive_json_from(timeout=5)
        assert (first["task"]["task_id"], first["task"]["status"]) == (task_id, "pending")
        fake_comfyone.drop_sockets()
        fake_comfyone.release()
        seen = []
        while not seen or seen[-1]["status"] != "finished":
            seen.append((await ws.receive_json_from(timeout=10))["task"])
        assert seen[-1]["images"] and seen[-1]["progress"] == 100
        await ws.disconnect()
    finally:
        await database_sync_to_async(running.__exit__, thread_sensitive=False)(None, None, None)


@pytest.mark.slow
def test_relay_command_stops_cleanly_on_sigterm(tmp_path, fake_comfyone):
    with LiveSite(
        tmp_path,
        extra_env={
            "COMFYONE_API_KEY": "test-key",
            "COMFYONE_BASE_URL": fake_comfyone.base_url,
            "LOG_LEVEL": "INFO",
        },
    ) as site:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "relay"],
            env=site.env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert fake_comfyone.wait_for_sockets(1, timeout=20)
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, output
        assert "relay: stopped" in output
        assert "test-key" not in output
        assert wait_for(lambda: fake_comfyone.socket_count == 0, timeout=5)


def test_relay_command_without_a_key_says_so(monkeypatch, settings):
    monkeypatch.delenv("COMFYONE_API_KEY", raising=False)
    settings.SCHEDULER = {}
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="COMFYONE_API_KEY"):
        call_command("relay")


def test_cancel_ends_cancelled_even_when_the_relay_sees_the_frame_first(
    client, backend, fake_comfyone
):
    # ComfyOne answers a cancel with finished {success: false}; the relay may apply it before
    # the cancel route stores `cancelled`. Either order must end cancelled, never failed.
    with RunningRelay(make_relay(client)):
        assert fake_comfyone.wait_for_sockets(1)
        fake_comfyone.hold()
        task_id = submit(fake_comfyone)
        assert wait_for(lambda: Task.objects.get(task_id=task_id).queue_position is not None)
        client.prompts.cancel(task_id)  # upstream first: the relay sees the frame first
        assert wait_for(lambda: task_status(task_id) == "cancelled")
        with pytest.raises(TaskAlreadyFinished):
            services.task_cancel(task=Task.objects.get(task_id=task_id), client=client)
    assert Task.objects.get(task_id=task_id).error_message == ""


def test_relay_survives_a_database_error(client, backend, fake_comfyone, monkeypatch):
    from django.db import OperationalError

    from scheduler import relay as relay_module

    real, calls = relay_module.lease_acquire, []

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("the database is restarting")
        return real(**kwargs)

    monkeypatch.setattr(relay_module, "lease_acquire", flaky)
    with RunningRelay(make_relay(client)):
        assert fake_comfyone.wait_for_sockets(1)
        task_id = submit(fake_comfyone)
        assert wait_for(lambda: task_status(task_id) == "finished")
    assert len(calls) >= 2
