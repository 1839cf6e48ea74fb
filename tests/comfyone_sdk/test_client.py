"""Every endpoint round-trips through ``ComfyOne`` against the loopback server."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from comfyone_sdk import (
    APIResponseError,
    AuthenticationError,
    Backend,
    ComfyOne,
    ComfyOneError,
    InputValidationError,
    NotFoundError,
    TaskState,
    Workflow,
)
from comfyone_sdk import _constants as c
from tests.support.comfyone_server import FakeComfyOne, png_bytes

from .conftest import API_KEY, GRAPH, INPUTS


def test_config_from_environment(monkeypatch: pytest.MonkeyPatch, server: FakeComfyOne) -> None:
    monkeypatch.setenv("COMFYONE_API_KEY", API_KEY)
    monkeypatch.setenv("COMFYONE_BASE_URL", server.base_url)
    monkeypatch.delenv("COMFYONE_WS_URL", raising=False)
    with ComfyOne() as client:
        assert client.base_url == server.base_url
        assert client.ws_url == server.ws_url
        assert client.backends.list() == []
        assert API_KEY not in repr(client)


def test_defaults_point_at_the_hosted_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMFYONE_BASE_URL", raising=False)
    monkeypatch.delenv("COMFYONE_WS_URL", raising=False)
    client = ComfyOne("k")
    assert client.base_url == c.DEFAULT_BASE_URL
    assert client.ws_url == "wss://pandora-server-cf.onethingai.com/v1/ws"
    assert ComfyOne("k", ws_url="ws://x/y").ws_url == "ws://x/y"
    monkeypatch.setenv("COMFYONE_WS_URL", "ws://env/ws")
    assert ComfyOne("k").ws_url == "ws://env/ws"


def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMFYONE_API_KEY", raising=False)
    with pytest.raises(ComfyOneError, match="COMFYONE_API_KEY"):
        ComfyOne()


def test_wrong_key_is_authentication_error(server: FakeComfyOne) -> None:
    with (
        ComfyOne("wrong", base_url=server.base_url) as client,
        pytest.raises(AuthenticationError) as info,
    ):
        client.backends.list()
    assert info.value.status_code == 401


def test_session_keeps_one_connection_alive(server: FakeComfyOne, client: ComfyOne) -> None:
    for _ in range(5):
        client.backends.list()
    assert len(server.client_ports) == 5
    assert len(set(server.client_ports)) == 1


def test_backends_round_trip(server: FakeComfyOne, client: ComfyOne) -> None:
    registered = client.backends.register("inst-1")
    assert isinstance(registered, Backend) and registered.name == "inst-1"
    assert server.requests[-1] == ("POST", "/v1/backends", {"instance_id": "inst-1"})
    assert [b.name for b in client.backends.list()] == ["inst-1"]
    fetched = client.backends.get("inst-1")
    assert fetched.state == "up"
    assert fetched.model_extra and "created_at" in fetched.model_extra  # extra fields kept
    down = client.backends.set_state("inst-1", "down")
    assert down is not None and down.state == "down"
    assert server.requests[-1] == ("PATCH", "/v1/backends/inst-1", {"state": "down"})
    assert server.backends["inst-1"]["state"] == "down"
    client.backends.delete("inst-1")
    assert server.backends == {}
    with pytest.raises(NotFoundError):
        client.backends.get("inst-1")
    with pytest.raises(InputValidationError):
        client.backends.set_state("inst-1", "sideways")  # type: ignore[arg-type]


def test_workflows_round_trip(server: FakeComfyOne, client: ComfyOne) -> None:
    created = client.workflows.create(name="txt2img", workflow=GRAPH, outputs=["9"], inputs=INPUTS)
    assert isinstance(created, Workflow) and created.id in server.workflows
    assert created.inputs[0].type == "number"
    assert server.workflows[created.id]["inputs"] == INPUTS
    assert [w.id for w in client.workflows.list()] == [created.id]
    assert client.workflows.get(created.id).workflow == GRAPH
    updated = client.workflows.update(
        created.id, name="renamed", workflow=GRAPH, outputs=["9"], inputs=INPUTS[:1]
    )
    assert updated.name == "renamed"
    assert server.requests[-1][:2] == ("PATCH", f"/v1/workflows/{created.id}")
    assert server.workflows[created.id]["name"] == "renamed"
    client.workflows.delete(created.id)
    assert server.workflows == {}


def test_workflow_rejected_before_sending(server: FakeComfyOne, client: ComfyOne) -> None:
    bad = [
        {"name": "", "workflow": GRAPH, "outputs": ["9"]},
        {"name": "x", "workflow": GRAPH, "outputs": ["404"]},
        {
            "name": "x",
            "workflow": GRAPH,
            "outputs": ["9"],
            "inputs": [{"id": "77", "type": "number", "name": "w"}],
        },
        {
            "name": "x",
            "workflow": GRAPH,
            "outputs": ["9"],
            "inputs": [{"id": "5", "type": "float", "name": "w"}],
        },
    ]
    for body in bad:
        with pytest.raises(InputValidationError) as info:
            client.workflows.create(**body)
        assert info.value.__cause__ is not None  # pydantic's error is chained
    assert server.requests == []


def test_files_upload_and_download(server: FakeComfyOne, client: ComfyOne, tmp_path: Path) -> None:
    source = tmp_path / "cat.png"
    source.write_bytes(png_bytes())
    uploaded = client.files.upload(source)
    assert uploaded.path.endswith("_cat.png")
    assert server.files[uploaded.path] == png_bytes()
    from_object = client.files.upload(io.BytesIO(b"raw bytes"), filename="mask.bin")
    assert server.files[from_object.path] == b"raw bytes"


def test_submit_sends_every_field(server: FakeComfyOne, client: ComfyOne, workflow_id: str) -> None:
    task_id = client.prompts.submit(
        workflow_id,
        [{"id": "5", "params": {"width": 1024}}, {"id": "6", "text": "a dog"}],  # flat form too
        free_cache=False,
        free_gpu=True,
        backend="inst-1",
    )
    method, path, body = server.requests[-1]
    assert (method, path) == ("POST", "/v1/prompts")
    assert body == {
        "workflow_id": workflow_id,
        "inputs": [
            {"id": "5", "params": {"width": 1024}},
            {"id": "6", "params": {"text": "a dog"}},
        ],
        "free_cache": False,
        "free_gpu": True,
        "backend": "inst-1",
    }
    graph = server.tasks[task_id].graph
    assert graph["5"]["inputs"]["width"] == 1024
    assert graph["6"]["inputs"]["text"] == "a dog"
    assert graph["9"]["inputs"]["filename_prefix"] == task_id  # system variable replaced


def test_submit_omits_unset_fields(
    server: FakeComfyOne, client: ComfyOne, workflow_id: str
) -> None:
    client.prompts.submit(workflow_id, {"5": {"height": 64}})
    assert server.requests[-1][2] == {
        "workflow_id": workflow_id,
        "inputs": [{"id": "5", "params": {"height": 64}}],
    }


def test_submit_rejected_before_sending(server: FakeComfyOne, client: ComfyOne) -> None:
    for call in (
        lambda: client.prompts.submit(""),
        lambda: client.prompts.submit("wf", [{"params": {"a": 1}}]),
        lambda: client.prompts.submit("wf", backend=""),
    ):
        with pytest.raises(InputValidationError):
            call()
    assert server.requests == []


@pytest.mark.parametrize(
    ("setup", "backend", "code", "msg"),
    [
        (lambda c: None, None, 2006, "this service has no backend yet"),
        (lambda c: c.backends.register("a"), "ghost", 2007, "backend ghost not found"),
        (
            lambda c: (c.backends.register("a"), c.backends.set_state("a", "down")),
            "a",
            2008,
            "backend a is down",
        ),
    ],
)
def test_submit_backend_codes(
    server: FakeComfyOne, client: ComfyOne, setup, backend: str | None, code: int, msg: str
) -> None:
    setup(client)
    server.workflows["wf"] = {"id": "wf", "name": "x", "workflow": GRAPH, "outputs": ["9"]}
    with pytest.raises(APIResponseError) as info:
        client.prompts.submit("wf", backend=backend)
    assert (info.value.code, info.value.msg) == (code, msg)
    assert info.value.request is not None and info.value.request.method == "POST"


def test_status_cancel_and_aliases(
    server: FakeComfyOne, client: ComfyOne, workflow_id: str
) -> None:
    server.hold()
    task_id = client.prompts.submit(workflow_id)
    status = client.prompts.status(task_id)
    assert status.status is TaskState.PENDING  # the server says "pendding"
    client.prompts.cancel(task_id)
    assert server.requests[-1][:2] == ("POST", f"/v1/prompts/{task_id}/cancel")
    assert client.prompts.status(task_id).status is TaskState.CANCELLED  # server says "cancel"
    with pytest.raises(NotFoundError):
        client.prompts.status("no-such-task")


def test_run_workflow_and_download(server: FakeComfyOne, client: ComfyOne, tmp_path: Path) -> None:
    client.backends.register("inst-1")
    task_id = client.prompts.run_workflow(GRAPH, ["9"], [{"id": "5", "width": 8}])
    assert server.requests[-1] == (
        "POST",
        "/v1/prompts_workflow",
        {"workflow": GRAPH, "outputs": ["9"], "inputs": [{"id": "5", "params": {"width": 8}}]},
    )
    assert server.tasks[task_id].graph["5"]["inputs"]["width"] == 8
    result = client.prompts.run(
        client.workflows.create(name="w", workflow=GRAPH, outputs=["9"]).id, timeout=10
    )
    url = result.images[0]
    to_folder = client.files.download(url, tmp_path)
    assert to_folder == tmp_path / Path(url).name
    assert to_folder.read_bytes().startswith(b"\x89PNG")
    to_file = client.files.download(url, tmp_path / "sub" / "named.png")
    assert to_file.read_bytes() == png_bytes()


def test_debug_logs_requests_but_never_the_key(
    server: FakeComfyOne, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="comfyone_sdk")
    server.fail_next("/v1/backends", 503)
    with ComfyOne(API_KEY, base_url=server.base_url, debug=True) as client:
        client._client.sleep = lambda _: None
        client.backends.list()
        with pytest.raises(AuthenticationError):
            ComfyOne("wrong-" + API_KEY, base_url=server.base_url, debug=True).backends.list()
    text = caplog.text
    assert "GET http://127.0.0.1" in text and "HTTP 503" in text and "retry 1/2" in text
    assert API_KEY not in text
    for record in caplog.records:
        assert API_KEY not in str(record.args)
