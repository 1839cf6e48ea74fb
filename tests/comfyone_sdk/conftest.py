"""Fixtures for the SDK tests: a fresh loopback ComfyOne server and a client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from comfyone_sdk import ComfyOne
from tests.support.comfyone_server import FakeComfyOne

API_KEY = "test-key-s3cr3t-4242"

GRAPH: dict[str, Any] = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
    "9": {
        "class_type": "SaveImage",
        "inputs": {"filename_prefix": "{COMFYONE:TASK_ID}", "images": ["5", 0]},
    },
}
INPUTS = [
    {"id": "5", "type": "number", "name": "width"},
    {"id": "5", "type": "number", "name": "height"},
    {"id": "6", "type": "string", "name": "text"},
]


@pytest.fixture
def server() -> Iterator[FakeComfyOne]:
    with FakeComfyOne(api_key=API_KEY, step_delay=0.005) as fake:
        yield fake


@pytest.fixture
def sleeps() -> list[float]:
    """The retry delays the client chose (it does not actually sleep)."""
    return []


@pytest.fixture
def client(server: FakeComfyOne, sleeps: list[float]) -> Iterator[ComfyOne]:
    with ComfyOne(
        API_KEY, base_url=server.base_url, ws_url=server.ws_url, timeout=(1.0, 2.0), max_retries=2
    ) as sdk:
        sdk._client.sleep = sleeps.append
        yield sdk


@pytest.fixture
def workflow_id(server: FakeComfyOne, client: ComfyOne) -> str:
    """A registered backend and workflow, ready for tasks."""
    client.backends.register("inst-1")
    return client.workflows.create(name="txt2img", workflow=GRAPH, outputs=["9"], inputs=INPUTS).id
