"""The loopback server itself: historic aliases, raw auth, and its controls behave as documented."""

from __future__ import annotations

import time

import requests

from tests.support.comfyone_server import FakeComfyOne

from .conftest import API_KEY, GRAPH

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _call(server: FakeComfyOne, method: str, path: str, **kwargs: object) -> requests.Response:
    return requests.request(method, server.base_url + path, timeout=5, **kwargs)  # type: ignore[arg-type]


def test_historic_aliases(server: FakeComfyOne) -> None:
    _call(server, "POST", "/v1/backends", json={"instance_id": "b"}, headers=AUTH)
    body = {"name": "w", "workflow": GRAPH, "outputs": ["9"]}
    workflow_id = _call(server, "POST", "/v1/workflows", json=body, headers=AUTH).json()["data"][
        "id"
    ]
    renamed = _call(
        server, "PUT", f"/v1/workflows/{workflow_id}", json={**body, "name": "v2"}, headers=AUTH
    )
    assert renamed.json()["data"]["name"] == "v2"
    server.hold()
    submitted = _call(
        server, "POST", "/v1/prompts", json={"workflow_id": workflow_id}, headers=AUTH
    )
    task_id = submitted.json()["data"]["taskId"]
    status = _call(server, "GET", f"/v1/prompts/{task_id}", headers=AUTH).json()
    assert status == {"code": 0, "msg": "ok", "data": {"status": "pendding"}}
    assert _call(server, "DELETE", f"/v1/prompts/{task_id}", headers=AUTH).json()["code"] == 0
    assert server.tasks[task_id].status == "cancel"


def test_wrong_or_missing_key_is_401(server: FakeComfyOne) -> None:
    assert _call(server, "GET", "/v1/backends").status_code == 401
    assert (
        _call(server, "GET", "/v1/backends", headers={"Authorization": "Bearer x"}).status_code
        == 401
    )
    assert _call(server, "GET", "/v1/ws").status_code == 401  # handshake refused before upgrade


def test_undeclared_input_is_rejected(server: FakeComfyOne) -> None:
    server.backends["b"] = {"name": "b", "state": "up"}
    server.workflows["wf"] = {"id": "wf", "name": "w", "workflow": GRAPH, "outputs": ["9"]}
    body = {"workflow_id": "wf", "inputs": [{"id": "5", "params": {"width": 1}}]}
    reply = _call(server, "POST", "/v1/prompts", json=body, headers=AUTH)
    assert reply.status_code == 400 and "not declared" in reply.json()["msg"]


def test_hold_before_start_and_positional_fail_next() -> None:
    server = FakeComfyOne(api_key=API_KEY)
    server.hold()
    with server:
        server.fail_next("/v1/backends", 503, 2)
        codes = [_call(server, "GET", "/v1/backends", headers=AUTH).status_code for _ in range(3)]
        assert codes == [503, 503, 200]
        server.backends["b"] = {"name": "b", "state": "up"}
        server.workflows["wf"] = {"id": "wf", "name": "w", "workflow": GRAPH, "outputs": ["9"]}
        reply = _call(server, "POST", "/v1/prompts", json={"workflow_id": "wf"}, headers=AUTH)
        task_id = reply.json()["data"]["taskId"]
        time.sleep(0.1)
        assert server.tasks[task_id].status == "pendding"
        server.release()
        deadline = time.monotonic() + 5
        while server.tasks[task_id].status != "finished" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.tasks[task_id].status == "finished"
