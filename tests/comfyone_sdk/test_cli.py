"""The ``comfyone`` CLI end to end: subprocesses against the loopback server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from comfyone_sdk import ComfyOne, cli
from tests.support.comfyone_server import FakeComfyOne, png_bytes

from .conftest import API_KEY, GRAPH, INPUTS

REPO = Path(__file__).resolve().parents[2]


def comfyone(
    server: FakeComfyOne | None, *args: str, key: str | None = API_KEY
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFYONE_")}
    if key is not None:
        env["COMFYONE_API_KEY"] = key
    if server is not None:
        env["COMFYONE_BASE_URL"] = server.base_url
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "comfyone_sdk.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_backends_commands(server: FakeComfyOne) -> None:
    assert comfyone(server, "backends", "register", "inst-1").returncode == 0
    assert comfyone(server, "backends", "down", "inst-1").stdout.strip() == "inst-1 is down"
    listed = comfyone(server, "--json", "backends", "list")
    assert listed.returncode == 0
    assert [b["name"] for b in json.loads(listed.stdout)] == ["inst-1"]
    assert json.loads(listed.stdout)[0]["state"] == "down"
    assert comfyone(server, "backends", "up", "inst-1").returncode == 0
    assert comfyone(server, "backends", "get", "inst-1").stdout.split() == ["inst-1", "up"]
    assert comfyone(server, "backends", "delete", "inst-1").returncode == 0
    assert server.backends == {}


def test_workflow_upload_run_status_end_to_end(server: FakeComfyOne, tmp_path: Path) -> None:
    spec = tmp_path / "txt2img.json"
    spec.write_text(
        json.dumps({"name": "txt2img", "workflow": GRAPH, "outputs": ["9"], "inputs": INPUTS})
    )
    comfyone(server, "backends", "register", "inst-1")
    created = comfyone(server, "workflows", "create", str(spec))
    assert created.returncode == 0, created.stderr
    workflow_id = created.stdout.strip()
    assert workflow_id in server.workflows
    assert workflow_id in comfyone(server, "workflows", "list").stdout
    assert json.loads(comfyone(server, "workflows", "get", workflow_id).stdout)["workflow"] == GRAPH

    image = tmp_path / "in.png"
    image.write_bytes(png_bytes())
    uploaded = comfyone(server, "upload", str(image))
    assert uploaded.returncode == 0 and uploaded.stdout.strip() in server.files

    out = tmp_path / "out"
    run = comfyone(
        server, "run", workflow_id, "--input", "5.width=1024", "-i", "6.text=a red fox",
        "--out", str(out), "--backend", "inst-1", "--free-gpu",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "100.0%" in run.stderr  # the progress bar went to stderr
    (task_id,) = server.tasks
    body = server.tasks[task_id].body
    assert body["backend"] == "inst-1" and body["free_gpu"] is True
    assert body["inputs"] == [
        {"id": "5", "params": {"width": 1024}},
        {"id": "6", "params": {"text": "a red fox"}},
    ]
    saved = list(out.iterdir())
    assert [p.read_bytes() for p in saved] == [png_bytes()]
    assert str(saved[0]) in run.stdout

    status = comfyone(server, "--json", "status", task_id)
    assert json.loads(status.stdout)["status"] == "finished"
    assert comfyone(server, "workflows", "delete", workflow_id).returncode == 0


def test_cancel_command(server: FakeComfyOne) -> None:
    server.backends["b"] = {"name": "b", "state": "up"}
    server.workflows["wf"] = {"id": "wf", "name": "w", "workflow": GRAPH, "outputs": ["9"]}
    server.hold()
    with ComfyOne(API_KEY, base_url=server.base_url) as client:
        task_id = client.prompts.submit("wf")
    assert comfyone(server, "cancel", task_id).returncode == 0
    assert server.tasks[task_id].status == "cancel"


def test_api_error_exits_1_with_one_line(server: FakeComfyOne) -> None:
    result = comfyone(server, "status", "no-such-task")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("comfyone: error: HTTP 404")
    envelope = comfyone(server, "run", "wf_missing")  # no backend: code 2006 with HTTP 200
    assert envelope.returncode == 1
    assert "2006" in envelope.stderr


def test_failed_task_exits_1(server: FakeComfyOne) -> None:
    server.backends["b"] = {"name": "b", "state": "up"}
    server.workflows["wf"] = {"id": "wf", "name": "w", "workflow": GRAPH, "outputs": ["9"]}
    server.fail_next_task(node="9", message="CUDA out of memory")
    result = comfyone(server, "run", "wf", "-q")
    assert result.returncode == 1
    assert result.stderr.strip().endswith("failed at node 9: CUDA out of memory")


def test_usage_errors_exit_2(server: FakeComfyOne) -> None:
    assert comfyone(server).returncode == 2
    assert comfyone(server, "backends", "fly").returncode == 2
    bad_input = comfyone(server, "run", "wf", "--input", "width=3")
    assert bad_input.returncode == 2 and "NODE.KEY=VALUE" in bad_input.stderr
    no_key = comfyone(server, "backends", "list", key=None)
    assert no_key.returncode == 2 and "COMFYONE_API_KEY" in no_key.stderr
    assert server.requests == []


def test_wrong_key_exits_1_and_key_is_never_printed(server: FakeComfyOne) -> None:
    result = comfyone(server, "--debug", "backends", "list", key="wrong-" + API_KEY)
    assert result.returncode == 1
    assert "401" in result.stderr and "GET http://127.0.0.1" in result.stderr
    assert API_KEY not in result.stderr + result.stdout


def test_ctrl_c_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setenv("COMFYONE_API_KEY", API_KEY)
    monkeypatch.setattr(cli, "_cmd_status", interrupted)
    assert cli.main(["--base-url", "http://127.0.0.1:9", "status", "t"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_input_values_are_json_or_text(server: FakeComfyOne, tmp_path: Path) -> None:
    image = tmp_path / "x.png"
    image.write_bytes(b"img")
    with ComfyOne(API_KEY, base_url=server.base_url) as client:
        parsed = cli._parse_inputs(
            client, ["5.width=512", "5.flag=true", "6.text=a cat", "10.image=@" + str(image)]
        )
    assert parsed["5"] == {"width": 512, "flag": True}
    assert parsed["6"] == {"text": "a cat"}
    assert server.files[parsed["10"]["image"]] == b"img"
