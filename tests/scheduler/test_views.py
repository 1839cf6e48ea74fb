"""Every route of the REST API through DRF's APIClient: shapes, status codes, auth, bad input."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from scheduler.models import AppPolicy, Backend

pytestmark = pytest.mark.django_db

BACKEND_KEYS = {"id", "app_id", "name", "host", "weight", "status", "created", "updated"}


def snapshot() -> list[tuple[Any, ...]]:
    """Everything the API can change, to prove a rejected request changed nothing."""
    return [
        *Backend.objects.order_by("id").values_list(
            "id", "app_id", "name", "host", "weight", "status", "updated"
        ),
        *AppPolicy.objects.order_by("app_id").values_list("app_id", "policy", "limit", "state"),
    ]


def post_json(client, url: str, body: Any):
    return client.post(url, json.dumps(body), content_type="application/json")


def patch_json(client, url: str, body: Any = None):
    data = None if body is None else json.dumps(body)
    return client.patch(url, data, content_type="application/json")


class TestBackendsCollection:
    def test_create_as_in_the_product_description(self, api):
        response = post_json(api, "/v1/txt2img/backends", {"name": "backend1", "host": "abc123"})
        assert response.status_code == 201
        body = response.json()
        assert set(body) == BACKEND_KEYS
        assert body | {"id": None, "created": None, "updated": None} == {
            "id": None,
            "app_id": "txt2img",
            "name": "backend1",
            "host": "abc123",
            "weight": 1,
            "status": "active",
            "created": None,
            "updated": None,
        }
        uuid.UUID(body["id"])
        assert body["created"].endswith("Z")

    def test_create_with_weight_and_status(self, api):
        body = post_json(
            api, "/v1/a/backends", {"name": "n", "host": "h", "weight": 7, "status": "down"}
        ).json()
        assert (body["weight"], body["status"]) == (7, "down")

    def test_list_oldest_first_with_status_filter(self, api, make_backend):
        first = make_backend(name="one")
        make_backend(name="two", status="down")
        make_backend(app_id="other", name="three")
        names = [b["name"] for b in api.get("/v1/txt2img/backends").json()]
        assert names == ["one", "two"]
        active = api.get("/v1/txt2img/backends?status=active").json()
        assert [b["id"] for b in active] == [str(first.id)]
        assert [b["name"] for b in api.get("/v1/txt2img/backends?status=down").json()] == ["two"]

    def test_unknown_app_lists_empty(self, api):
        response = api.get("/v1/nothing-here/backends")
        assert (response.status_code, response.json()) == (200, [])

    def test_name_may_repeat_across_apps(self, api, make_backend):
        make_backend(app_id="a", name="same")
        assert post_json(api, "/v1/b/backends", {"name": "same", "host": "x"}).status_code == 201


class TestBackendDetail:
    def test_get(self, api, make_backend):
        backend = make_backend()
        body = api.get(f"/v1/txt2img/backends/{backend.id}").json()
        assert body["id"] == str(backend.id) and body["host"] == backend.host

    def test_get_from_another_app_is_404(self, api, make_backend):
        backend = make_backend(app_id="a")
        response = api.get(f"/v1/b/backends/{backend.id}")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"

    def test_status_by_query_parameter(self, api, make_backend):
        backend = make_backend()
        response = api.patch(f"/v1/txt2img/backends/{backend.id}?status=down")
        assert (response.status_code, response.json()["status"]) == (200, "down")
        response = api.patch(f"/v1/txt2img/backends/{backend.id}?status=active")
        assert response.json()["status"] == "active"
        backend.refresh_from_db()
        assert backend.status == "active"

    def test_status_by_json_body(self, api, make_backend):
        backend = make_backend()
        response = patch_json(api, f"/v1/txt2img/backends/{backend.id}", {"status": "down"})
        assert response.json()["status"] == "down"

    def test_delete(self, api, make_backend):
        backend = make_backend()
        response = api.delete(f"/v1/txt2img/backends/{backend.id}")
        assert response.status_code == 204 and response.content == b""
        assert not Backend.objects.exists()
        assert api.delete(f"/v1/txt2img/backends/{backend.id}").status_code == 404

    def test_move_to_another_app(self, api, make_backend):
        backend = make_backend(app_id="txt2img")
        response = api.patch(f"/v1/txt2img/backends/{backend.id}/app?new_app_id=img2img")
        assert (response.status_code, response.json()["app_id"]) == (200, "img2img")
        assert api.get(f"/v1/img2img/backends/{backend.id}").status_code == 200
        assert api.get(f"/v1/txt2img/backends/{backend.id}").status_code == 404

    def test_move_by_json_body(self, api, make_backend):
        backend = make_backend()
        response = patch_json(api, f"/v1/txt2img/backends/{backend.id}/app", {"new_app_id": "z"})
        assert response.json()["app_id"] == "z"

    def test_move_onto_a_taken_name_is_409(self, api, make_backend):
        backend = make_backend(app_id="a", name="n")
        make_backend(app_id="b", name="n")
        before = snapshot()
        response = api.patch(f"/v1/a/backends/{backend.id}/app?new_app_id=b")
        assert response.status_code == 409
        assert response.json()["code"] == "name_taken"
        assert "name" in response.json()["detail"]
        assert snapshot() == before

    def test_weight(self, api, make_backend):
        backend = make_backend()
        response = patch_json(api, f"/v1/txt2img/backends/{backend.id}/weight", {"weight": 42})
        assert (response.status_code, response.json()["weight"]) == (200, 42)
        backend.refresh_from_db()
        assert backend.weight == 42


class TestSelection:
    def test_default_policy_is_all_active_limit_5(self, api, make_backend):
        made = [make_backend() for _ in range(6)]
        make_backend(status="down")
        body = api.get("/v1/txt2img/select").json()
        assert (body["app_id"], body["policy"], body["limit"]) == ("txt2img", "all_active", 5)
        assert [b["id"] for b in body["backends"]] == [str(b.id) for b in made[:5]]

    def test_round_robin_rotates(self, api, make_backend):
        made = [make_backend() for _ in range(3)]
        api.put("/v1/txt2img/policy", {"policy": "round_robin"}, format="json")
        firsts = [api.get("/v1/txt2img/select").json()["backends"][0]["id"] for _ in range(6)]
        assert firsts == [str(b.id) for b in made] * 2

    def test_no_active_backend_is_503(self, api, make_backend):
        make_backend(status="down")
        response = api.get("/v1/txt2img/select")
        assert response.status_code == 503
        assert response.json()["code"] == "no_backend_available"
        assert api.get("/v1/empty/select").status_code == 503

    def test_policy_get_default_then_put(self, api):
        assert api.get("/v1/x/policy").json() == {"app_id": "x", "policy": "all_active", "limit": 5}
        response = api.put("/v1/x/policy", {"policy": "weighted", "limit": 2}, format="json")
        assert response.json() == {"app_id": "x", "policy": "weighted", "limit": 2}
        response = api.put("/v1/x/policy", {"policy": "random"}, format="json")
        assert response.json() == {"app_id": "x", "policy": "random", "limit": 2}
        assert api.get("/v1/x/policy").json()["limit"] == 2

    def test_policies_list(self, api):
        body = api.get("/v1/policies").json()
        assert {p["name"]: p["default_limit"] for p in body} == {
            "round_robin": 1,
            "weighted": 3,
            "all_active": 5,
            "random": 2,
        }
        assert all(p["description"] for p in body)

    def test_all_backends_with_filters(self, api, make_backend):
        make_backend(app_id="a", name="1")
        make_backend(app_id="b", name="2", status="down")
        assert [b["name"] for b in api.get("/v1/backends").json()] == ["1", "2"]
        assert [b["name"] for b in api.get("/v1/backends?app_id=b").json()] == ["2"]
        assert [b["name"] for b in api.get("/v1/backends?status=active").json()] == ["1"]


ROUTES = [
    ("get", "/v1/backends"),
    ("get", "/v1/policies"),
    ("get", "/v1/a/backends"),
    ("post", "/v1/a/backends"),
    ("get", "/v1/a/backends/{id}"),
    ("patch", "/v1/a/backends/{id}?status=down"),
    ("delete", "/v1/a/backends/{id}"),
    ("patch", "/v1/a/backends/{id}/app?new_app_id=b"),
    ("patch", "/v1/a/backends/{id}/weight"),
    ("get", "/v1/a/select"),
    ("get", "/v1/a/policy"),
    ("put", "/v1/a/policy"),
]
WRITES = {"post", "patch", "delete", "put"}


class TestAuth:
    @pytest.mark.parametrize(("method", "path"), ROUTES)
    def test_anonymous_is_401(self, anon, make_backend, method, path):
        backend = make_backend(app_id="a")
        before = snapshot()
        response = getattr(anon, method)(path.format(id=backend.id))
        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"
        assert response["WWW-Authenticate"] == "Token"
        assert snapshot() == before

    @pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r[0] in WRITES])
    def test_non_staff_cannot_write(self, reader, make_backend, method, path):
        backend = make_backend(app_id="a")
        before = snapshot()
        body = {"name": "n", "host": "h", "weight": 2, "policy": "random"}
        response = getattr(reader, method)(path.format(id=backend.id), body, format="json")
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"
        assert snapshot() == before

    @pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r[0] not in WRITES])
    def test_non_staff_can_read(self, reader, make_backend, method, path):
        backend = make_backend(app_id="a")
        assert getattr(reader, method)(path.format(id=backend.id)).status_code == 200

    def test_bad_token_is_401(self, db):
        from rest_framework.test import APIClient

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
        assert client.get("/v1/backends").status_code == 401

    def test_session_login_works_for_reads_and_needs_csrf_for_writes(self, staff_user):
        from rest_framework.test import APIClient

        client = APIClient(enforce_csrf_checks=True)
        client.force_login(staff_user)
        assert client.get("/v1/backends").status_code == 200
        response = client.post("/v1/a/backends", {"name": "n", "host": "h"}, format="json")
        assert response.status_code == 403
        assert "CSRF" in response.json()["detail"]

    def test_permission_classes_are_overridable(self, anon, settings, make_backend):
        settings.SCHEDULER = {"PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"]}
        assert (
            anon.post("/v1/a/backends", {"name": "n", "host": "h"}, format="json").status_code
            == 201
        )
        settings.SCHEDULER = {}
        assert anon.get("/v1/backends").status_code == 401


def _create(api, body):
    return post_json(api, "/v1/txt2img/backends", body)


class TestBadInput:
    """Each bad input: a 4xx naming the field, and the database exactly as it was."""

    @pytest.fixture
    def existing(self, make_backend):
        return make_backend(name="taken", host="http://taken:8188")

    def check(self, response, status: int, field: str) -> None:
        assert response.status_code == status, response.content
        body = response.json()
        if field in body:
            assert isinstance(body[field], list) and body[field][0]
        else:
            assert field in body["detail"], body

    @pytest.mark.parametrize("weight", [0, -1, 1.5, "abc", 10**12, None, True, "5"])
    def test_bad_weight_on_weight_route(self, api, existing, weight):
        before = snapshot()
        url = f"/v1/txt2img/backends/{existing.id}/weight"
        self.check(patch_json(api, url, {"weight": weight}), 400, "weight")
        assert "1 to 1000000" in patch_json(api, url, {"weight": weight}).json()["weight"][0] or (
            weight is None
        )
        assert snapshot() == before

    def test_missing_weight(self, api, existing):
        before = snapshot()
        self.check(patch_json(api, f"/v1/txt2img/backends/{existing.id}/weight", {}), 400, "weight")
        assert snapshot() == before

    @pytest.mark.parametrize("weight", [0, -1, 1.5, "abc", 10**12])
    def test_bad_weight_on_create(self, api, existing, weight):
        before = snapshot()
        self.check(_create(api, {"name": "n", "host": "h", "weight": weight}), 400, "weight")
        assert snapshot() == before

    @pytest.mark.parametrize("status", ["up", "", None])
    def test_bad_status_in_body(self, api, existing, status):
        before = snapshot()
        response = patch_json(api, f"/v1/txt2img/backends/{existing.id}", {"status": status})
        self.check(response, 400, "status")
        assert snapshot() == before

    @pytest.mark.parametrize("query", ["status=up", "status="])
    def test_bad_status_in_query(self, api, existing, query):
        before = snapshot()
        response = api.patch(f"/v1/txt2img/backends/{existing.id}?{query}")
        self.check(response, 400, "status")
        assert "active, down" in response.json()["status"][0] or query == "status="
        assert snapshot() == before

    def test_missing_status(self, api, existing):
        before = snapshot()
        self.check(api.patch(f"/v1/txt2img/backends/{existing.id}"), 400, "status")
        assert snapshot() == before

    @pytest.mark.parametrize("status", ["up", "", None])
    def test_bad_status_on_create(self, api, existing, status):
        before = snapshot()
        self.check(_create(api, {"name": "n", "host": "h", "status": status}), 400, "status")
        assert snapshot() == before

    @pytest.mark.parametrize(
        "app_id", ["has space", "x" * 65, "semi;colon", "ünicode", "-" * 64 + "+"]
    )
    def test_bad_app_id(self, api, existing, app_id):
        before = snapshot()
        from urllib.parse import quote

        url = f"/v1/{quote(app_id, safe='')}/backends"
        self.check(_create_at(api, url, {"name": "n", "host": "h"}), 400, "app_id")
        self.check(api.get(f"/v1/{quote(app_id, safe='')}/select"), 400, "app_id")
        assert snapshot() == before

    def test_app_id_with_space_and_65_chars_are_400(self, api, existing):
        for app_id in ("has%20space", "x" * 65):
            self.check(
                _create_at(api, f"/v1/{app_id}/backends", {"name": "n", "host": "h"}), 400, "app_id"
            )
            self.check(api.get(f"/v1/{app_id}/backends"), 400, "app_id")
            self.check(api.get(f"/v1/{app_id}/policy"), 400, "app_id")

    @pytest.mark.parametrize("new_app_id", ["has%20space", "x" * 65, ""])
    def test_bad_new_app_id(self, api, existing, new_app_id):
        before = snapshot()
        response = api.patch(f"/v1/txt2img/backends/{existing.id}/app?new_app_id={new_app_id}")
        self.check(response, 400, "new_app_id")
        assert snapshot() == before

    def test_missing_new_app_id(self, api, existing):
        self.check(api.patch(f"/v1/txt2img/backends/{existing.id}/app"), 400, "new_app_id")

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("name", ""),
            ("name", "n" * 101),
            ("host", ""),
            ("host", "h" * 256),
            ("name", None),
            ("host", 5),
            ("name", ["list"]),
        ],
    )
    def test_bad_name_or_host(self, api, existing, field, value):
        before = snapshot()
        body = {"name": "fresh", "host": "http://fresh"} | {field: value}
        self.check(_create(api, body), 400, field)
        assert snapshot() == before

    @pytest.mark.parametrize("missing", ["name", "host"])
    def test_missing_name_or_host(self, api, existing, missing):
        body = {"name": "fresh", "host": "http://fresh"}
        del body[missing]
        self.check(_create(api, body), 400, missing)

    def test_name_taken_is_409(self, api, existing):
        before = snapshot()
        response = _create(api, {"name": "taken", "host": "http://other"})
        self.check(response, 409, "name")
        assert response.json()["code"] == "name_taken"
        assert snapshot() == before

    def test_host_taken_is_409_even_in_another_app(self, api, existing):
        before = snapshot()
        response = post_json(api, "/v1/other/backends", {"name": "x", "host": "http://taken:8188"})
        self.check(response, 409, "host")
        assert response.json()["code"] == "host_taken"
        assert snapshot() == before

    @pytest.mark.parametrize("route", ["", "/app?new_app_id=b", "/weight"])
    def test_unknown_backend_id(self, api, existing, route):
        before = snapshot()
        response = patch_json(
            api, f"/v1/txt2img/backends/{uuid.uuid4()}{route}", {"weight": 2, "status": "down"}
        )
        self.check(response, 404, "backend")
        assert snapshot() == before

    @pytest.mark.parametrize("method", ["get", "delete", "patch"])
    def test_malformed_uuid(self, api, existing, method):
        before = snapshot()
        response = getattr(api, method)("/v1/txt2img/backends/not-a-uuid?status=down")
        self.check(response, 404, "backend_id")
        assert snapshot() == before

    @pytest.mark.parametrize("body", ['{"name": ', "name=x&host=y", "[1, 2]", '"text"', "null"])
    def test_non_json_or_non_object_body(self, api, existing, body):
        before = snapshot()
        response = api.post("/v1/txt2img/backends", body, content_type="application/json")
        assert response.status_code == 400
        assert snapshot() == before

    def test_non_json_content_type_is_415(self, api, existing):
        response = api.post(
            "/v1/txt2img/backends",
            "name=x&host=y",
            content_type="application/x-www-form-urlencoded",
        )
        assert response.status_code == 415
        assert response.json()["code"] == "unsupported_media_type"

    def test_unknown_policy(self, api, existing):
        before = snapshot()
        response = api.put("/v1/txt2img/policy", {"policy": "fastest"}, format="json")
        self.check(response, 400, "policy")
        assert "round_robin" in response.json()["policy"][0]
        assert snapshot() == before

    @pytest.mark.parametrize("limit", [0, 101, -1, 1.5, "abc"])
    def test_bad_limit(self, api, existing, limit):
        before = snapshot()
        response = api.put(
            "/v1/txt2img/policy", {"policy": "random", "limit": limit}, format="json"
        )
        self.check(response, 400, "limit")
        assert "1 to 100" in response.json()["limit"][0]
        assert snapshot() == before

    @pytest.mark.parametrize("query", ["status=up", "app_id=has%20space"])
    def test_bad_list_filters(self, api, existing, query):
        self.check(api.get(f"/v1/backends?{query}"), 400, query.split("=")[0])


def _create_at(api, url, body):
    return post_json(api, url, body)
