"""The error tree: classes, attributes, chaining, and the envelope's synonyms."""

from __future__ import annotations

import builtins
import json

import pytest
import requests

from comfyone_sdk import (
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    BadRequestError,
    ComfyOne,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TaskFailedError,
    TaskTimeoutError,
    errors,
)
from comfyone_sdk._base_client import BaseClient
from tests.support.comfyone_server import FakeComfyOne

from .conftest import API_KEY


def test_tree_has_one_root_and_no_builtin_names() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.ComfyOneError)
        assert not hasattr(builtins, name), f"{name} shadows a builtin"
        assert name in errors.__doc__  # the docstring draws the whole tree
    assert issubclass(APITimeoutError, APIConnectionError)
    assert not issubclass(APIConnectionError, APIStatusError)
    assert issubclass(errors.InputValidationError, ValueError)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, errors.AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (418, APIStatusError),
        (429, RateLimitError),
        (500, InternalServerError),
        (503, InternalServerError),
    ],
)
def test_status_families(server: FakeComfyOne, client: ComfyOne, status: int, cls: type) -> None:
    server.fail_next("/v1/backends", status, times=5, retry_after=3)
    with pytest.raises(cls) as info:
        client.backends.list()
    error = info.value
    assert type(error) is cls
    assert error.status_code == status
    assert error.response.status_code == status
    assert error.request.method == "GET"
    assert f"injected HTTP {status}" in str(error)
    if cls is RateLimitError:
        assert error.retry_after == 3.0


def test_connection_error_is_chained() -> None:
    with (
        ComfyOne("k", base_url="http://127.0.0.1:9", max_retries=0, timeout=1) as client,
        pytest.raises(APIConnectionError) as info,
    ):
        client.backends.list()
    assert isinstance(info.value.__cause__, requests.ConnectionError)
    assert not isinstance(info.value, APITimeoutError)


def test_timeout_error_is_chained(server: FakeComfyOne) -> None:
    server.delay_next(0.5)
    with (
        ComfyOne(API_KEY, base_url=server.base_url, max_retries=0, timeout=5) as client,
        pytest.raises(APITimeoutError) as info,
    ):
        client.backends.list(timeout=(1.0, 0.1))  # per-call override wins
    assert isinstance(info.value.__cause__, requests.ReadTimeout)


def test_envelope_error_on_http_200(server: FakeComfyOne, client: ComfyOne) -> None:
    server.envelope_error_next(2006, "this service has no backend yet")
    with pytest.raises(APIResponseError) as info:
        client.workflows.list()
    assert info.value.code == 2006
    assert info.value.msg == "this service has no backend yet"
    assert info.value.request.url.endswith("/v1/workflows")
    assert "2006" in str(info.value)


def _response(body: object, status: int = 200) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.url = "http://example.invalid/v1/x"
    return response


def test_message_is_a_synonym_of_msg() -> None:
    base = BaseClient(api_key="k", base_url="http://example.invalid", timeout=1, max_retries=0)
    with pytest.raises(APIResponseError) as info:
        base._unwrap(_response({"code": 7, "message": "from node sdk", "data": None}))
    assert info.value.msg == "from node sdk"
    assert base._unwrap(_response({"code": 0, "message": "ok", "data": [1]})) == [1]
    error = base._status_error(_response({"code": 1, "message": "nope"}, 400), None)
    assert isinstance(error, BadRequestError) and error.message == "nope"


def test_task_errors_carry_their_fields() -> None:
    failed = TaskFailedError("t1", node="9", message="CUDA out of memory")
    assert (failed.task_id, failed.node, failed.message, failed.status) == (
        "t1",
        "9",
        "CUDA out of memory",
        "failed",
    )
    assert str(failed) == "task t1 failed at node 9: CUDA out of memory"
    timeout = TaskTimeoutError("t2", timeout=1.5, cancelled=True)
    assert timeout.task_id == "t2" and "1.5 s" in str(timeout) and "cancelled" in str(timeout)
