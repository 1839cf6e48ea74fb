"""Retries happen exactly where they are safe, never for submission, and honour Retry-After.

Delays are checked through the client's injectable ``sleep`` (the ``sleeps`` fixture), never
by wall time.
"""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from comfyone_sdk import (
    APIConnectionError,
    APIResponseError,
    APITimeoutError,
    ComfyOne,
    InternalServerError,
    RateLimitError,
)
from comfyone_sdk import _constants as c
from comfyone_sdk._base_client import parse_retry_after, retry_delay
from tests.support.comfyone_server import FakeComfyOne

from .conftest import API_KEY


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_get_retried_after_503_then_succeeds(
    server: FakeComfyOne, client: ComfyOne, sleeps: list[float]
) -> None:
    server.fail_next("/v1/backends", 503, times=2)
    assert client.backends.list() == []
    assert server.count("GET", "/v1/backends") == 3
    assert len(sleeps) == 2
    # Equal jitter: attempt n waits between half and all of base * 2**n.
    assert c.RETRY_BACKOFF_BASE / 2 <= sleeps[0] <= c.RETRY_BACKOFF_BASE
    assert c.RETRY_BACKOFF_BASE <= sleeps[1] <= 2 * c.RETRY_BACKOFF_BASE


def test_gives_up_after_max_retries(
    server: FakeComfyOne, client: ComfyOne, sleeps: list[float]
) -> None:
    server.fail_next("/v1/workflows", 502, times=10)
    with pytest.raises(InternalServerError):
        client.workflows.list()
    assert server.count("GET", "/v1/workflows") == 3  # 1 + max_retries
    assert len(sleeps) == 2


def test_max_retries_zero_means_one_attempt(server: FakeComfyOne) -> None:
    server.fail_next("/v1/backends", 503, times=2)
    with ComfyOne(API_KEY, base_url=server.base_url, max_retries=0) as client:
        client._client.sleep = pytest.fail  # must never be called
        with pytest.raises(InternalServerError):
            client.backends.list()
    assert server.count("GET", "/v1/backends") == 1


def test_retry_after_seconds_is_honoured(
    server: FakeComfyOne, client: ComfyOne, sleeps: list[float]
) -> None:
    server.fail_next("/v1/backends", 429, retry_after=2)
    client.backends.list()
    assert sleeps == [2.0]


def test_retry_after_http_date_is_honoured(
    server: FakeComfyOne, client: ComfyOne, sleeps: list[float]
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    server.fail_next("/v1/backends", 503, retry_after=when)
    client.backends.list()
    assert len(sleeps) == 1 and 27 <= sleeps[0] <= 30


def test_retry_after_is_clamped(
    server: FakeComfyOne, client: ComfyOne, sleeps: list[float]
) -> None:
    server.fail_next("/v1/backends", 429, retry_after=3600)
    client.backends.list()
    assert sleeps == [c.RETRY_AFTER_MAX]


def test_rate_limit_error_after_retries_keeps_retry_after(
    server: FakeComfyOne, client: ComfyOne, sleeps: list[float]
) -> None:
    server.fail_next("/v1/backends", 429, times=3, retry_after=1.5)
    with pytest.raises(RateLimitError) as info:
        client.backends.list()
    assert info.value.retry_after == 1.5
    assert sleeps == [1.5, 1.5]


@pytest.mark.parametrize(
    ("method", "path", "call"),
    [
        ("PATCH", "/v1/backends/inst-1", lambda cl: cl.backends.set_state("inst-1", "down")),
        ("DELETE", "/v1/backends/inst-1", lambda cl: cl.backends.delete("inst-1")),
        ("GET", "/v1/backends/inst-1", lambda cl: cl.backends.get("inst-1")),
    ],
)
def test_idempotent_methods_are_retried(
    server: FakeComfyOne, client: ComfyOne, sleeps: list[float], method: str, path: str, call
) -> None:
    client.backends.register("inst-1")
    server.fail_next(path, 503, method=method)
    call(client)
    assert server.count(method, path) == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize("status", [429, 500, 503])
def test_submission_is_never_retried_on_status(
    server: FakeComfyOne, client: ComfyOne, sleeps: list[float], workflow_id: str, status: int
) -> None:
    server.fail_next("/v1/prompts", status, method="POST", retry_after=0)
    with pytest.raises(RateLimitError if status == 429 else InternalServerError):
        client.prompts.submit(workflow_id)
    assert server.count("POST", "/v1/prompts") == 1
    assert sleeps == []
    assert server.tasks == {}


def test_submission_is_never_retried_after_a_read_timeout(
    server: FakeComfyOne, client: ComfyOne, sleeps: list[float], workflow_id: str
) -> None:
    server.delay_next(0.6, path_prefix="/v1/prompts", method="POST")
    with pytest.raises(APITimeoutError):
        client.prompts.submit(workflow_id, timeout=(1.0, 0.2))
    assert sleeps == []
    assert server.count("POST", "/v1/prompts") == 1
    # The request did reach the server: a blind retry would have made a second task.
    deadline = time.monotonic() + 5
    while not server.tasks and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(server.tasks) == 1


def test_run_workflow_and_upload_are_not_retried(
    server: FakeComfyOne, client: ComfyOne, sleeps: list[float], tmp_path: Path
) -> None:
    client.backends.register("inst-1")
    server.fail_next("/v1/prompts_workflow", 503)
    with pytest.raises(InternalServerError):
        client.prompts.run_workflow({"1": {"class_type": "X", "inputs": {}}}, ["1"])
    server.fail_next("/v1/files", 503)
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(InternalServerError):
        client.files.upload(tmp_path / "a.png")
    assert server.count("POST", "/v1/prompts_workflow") == 1
    assert server.count("POST", "/v1/files") == 1
    assert sleeps == []


def test_reads_are_retried_after_a_read_timeout(
    server: FakeComfyOne, client: ComfyOne, sleeps: list[float]
) -> None:
    server.delay_next(0.6, path_prefix="/v1/backends")
    assert client.backends.list(timeout=(1.0, 0.2)) == []
    assert server.count("GET", "/v1/backends") == 2
    assert len(sleeps) == 1


def test_refused_connection_is_retried_even_for_submission(sleeps: list[float]) -> None:
    with ComfyOne("k", base_url=f"http://127.0.0.1:{_closed_port()}", max_retries=3) as client:
        client._client.sleep = sleeps.append
        with pytest.raises(APIConnectionError) as info:
            client.prompts.submit("wf")
    # Nothing was sent, so repeating cannot create a second task.
    assert len(sleeps) == 3
    assert info.value.__cause__ is not None


def test_envelope_errors_are_not_retried(
    server: FakeComfyOne, client: ComfyOne, sleeps: list[float]
) -> None:
    server.envelope_error_next(5000, "internal")
    with pytest.raises(APIResponseError):
        client.backends.list()
    assert server.count("GET", "/v1/backends") == 1 and sleeps == []


def test_retry_decisions_are_logged(
    server: FakeComfyOne, client: ComfyOne, caplog: pytest.LogCaptureFixture, workflow_id: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="comfyone_sdk")
    server.delay_next(0.6, path_prefix="/v1/prompts", method="POST")
    with pytest.raises(APITimeoutError):
        client.prompts.submit(workflow_id, timeout=(1.0, 0.2))
    assert "not retried (may have reached the server)" in caplog.text
    assert API_KEY not in caplog.text


def test_retry_delay_grows_and_is_capped() -> None:
    for attempt in range(8):
        ceiling = min(c.RETRY_BACKOFF_CAP, c.RETRY_BACKOFF_BASE * 2**attempt)
        for _ in range(20):
            assert ceiling / 2 <= retry_delay(attempt) <= ceiling
    assert retry_delay(30) <= c.RETRY_BACKOFF_CAP
    assert retry_delay(0, retry_after=4) == 4


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
