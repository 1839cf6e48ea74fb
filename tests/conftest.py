"""Fixtures shared by the whole suite: API clients per role, and the services it may need.

PostgreSQL and Redis tests run when `TEST_POSTGRES_URL` / `TEST_REDIS_URL` name a reachable
server (the defaults are the local ones) and skip with the reason otherwise; `.ci/run` sets
`REQUIRE_SERVICES=1`, which turns those skips into failures.
"""

from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import pytest
from asgiref.sync import SyncToAsync

# A forked live server inherits asgiref's single-thread executor without its thread, and its
# WebSockets then never complete: give the child a fresh executor.
os.register_at_fork(
    after_in_child=lambda: setattr(
        SyncToAsync, "single_thread_executor", ThreadPoolExecutor(max_workers=1)
    )
)

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=1):
            return True
    except OSError:
        return False


def need_service(name: str, url: str) -> None:
    """Skip (or, under REQUIRE_SERVICES=1, fail) when the service at `url` is unreachable."""
    if _reachable(url):
        return
    message = f"{name} is not reachable at {url}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}, and REQUIRE_SERVICES=1 makes it required")
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> str:
    need_service("PostgreSQL", POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
def redis_url() -> str:
    need_service("Redis", REDIS_URL)
    return REDIS_URL


@pytest.fixture(autouse=True)
def _close_async_db_connections(request):
    """Async tests reach the database from asgiref's executor thread, whose connection would
    keep PostgreSQL from dropping the test database at the end."""
    yield
    if "django_db_setup" in request.fixturenames:
        from django.db import connections

        SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)
