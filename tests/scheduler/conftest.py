"""Fixtures for the scheduler app: users of each role and DRF API clients acting as them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from scheduler import services
from scheduler.models import Backend


def _client_for(user: Any | None) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def staff_user(db: Any) -> Any:
    return get_user_model().objects.create_user("staff", is_staff=True)


@pytest.fixture
def plain_user(db: Any) -> Any:
    return get_user_model().objects.create_user("reader")


@pytest.fixture
def api(staff_user: Any) -> APIClient:
    """A client authenticated with a staff user's token."""
    return _client_for(staff_user)


@pytest.fixture
def reader(plain_user: Any) -> APIClient:
    """A client authenticated with a non-staff user's token."""
    return _client_for(plain_user)


@pytest.fixture
def anon(db: Any) -> APIClient:
    return APIClient()


@pytest.fixture
def make_backend(db: Any) -> Callable[..., Backend]:
    counter = iter(range(1, 10_000))

    def make(app_id: str = "txt2img", name: str | None = None, **fields: Any) -> Backend:
        n = next(counter)
        return services.backend_register(
            app_id=app_id,
            name=name or f"backend{n}",
            host=fields.pop("host", f"http://10.0.0.{n}:8188"),
            **fields,
        )

    return make


WORKFLOW = {
    "name": "txt2img-basic",
    "inputs": [{"id": "5", "type": "number", "name": "width"}],
    "outputs": ["9"],
    "workflow": {
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["5", 0]}},
    },
}


@pytest.fixture
def fake_comfyone():
    """A real loopback ComfyOne server with two instances and one workflow registered."""
    from comfyone_sdk import ComfyOne
    from tests.support.comfyone_server import FakeComfyOne

    with FakeComfyOne(api_key="test-key", step_delay=0.01) as server:
        with ComfyOne("test-key", base_url=server.base_url) as client:
            client.backends.register("inst-1")
            client.backends.register("inst-2")
            server.workflow_id = client.workflows.create(**WORKFLOW).id
        yield server


@pytest.fixture
def comfyone_settings(settings, fake_comfyone):
    """Point the app at the loopback ComfyOne server."""
    settings.SCHEDULER = {
        "COMFYONE_API_KEY": "test-key",
        "COMFYONE_BASE_URL": fake_comfyone.base_url,
        "COMFYONE_TIMEOUT": 5.0,
    }
    return settings
