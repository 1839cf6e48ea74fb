"""How the site is served: health and readiness, the request log line, and static files
with DEBUG off through the real server process."""

from __future__ import annotations

import json
import re

import pytest
import requests

from tests.livesite import LiveSite


@pytest.mark.django_db
def test_healthz(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_checks_database_and_channel_layer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "channel_layer": "ok"}}


@pytest.mark.django_db
def test_readyz_names_a_dead_channel_layer(client, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:9/0"]},
        }
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["checks"]["database"] == "ok"
    assert body["checks"]["channel_layer"] != "ok"


@pytest.mark.django_db
def test_one_json_log_line_per_request_without_the_query(client, caplog):
    caplog.set_level("INFO", logger="scheduler.requests")
    client.get("/healthz?token=secret-value")
    lines = [r.getMessage() for r in caplog.records if r.name == "scheduler.requests"]
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["method"] == "GET" and entry["path"] == "/healthz" and entry["status"] == 200
    assert entry["ms"] >= 0 and entry["user"] is None
    assert "secret-value" not in lines[0]


@pytest.mark.slow
def test_debug_off_serves_docs_and_admin_assets(tmp_path):
    static_root = tmp_path / "static"
    with LiveSite(tmp_path, extra_env={"STATIC_ROOT": str(static_root)}) as site:
        site.manage("collectstatic", "--noinput", "-v", "0")
        (url,) = site.start(1)
        for page in ("/api/docs/", "/api/redoc/", "/admin/login/"):
            response = requests.get(url + page, timeout=10)
            assert response.status_code == 200, page
            assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', response.text)
            assert assets, page
            for asset in assets:
                assert asset.startswith("/static/"), asset
                got = requests.get(url + asset, timeout=10)
                assert got.status_code == 200, asset
                assert "max-age" in got.headers.get("Cache-Control", ""), asset
        assert requests.get(url + "/healthz", timeout=10).json() == {"status": "ok"}
        ready = requests.get(url + "/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
