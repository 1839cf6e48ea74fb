"""The OpenAPI schema is a tested contract, and the API docs are self-hosted.

Proves that `manage.py spectacular --validate --fail-on-warn` passes; that the generated
schema holds every route of the spec table, each with a summary, tags and every error
response it can give; and that `/api/schema/`, Swagger UI and ReDoc answer anonymous users and
load every script, stylesheet and schema URL from the site itself (nothing from a CDN).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

# The route table of shared/spec/scheduler-api.md: method and path as a user types them.
SPEC_ROUTES = {
    ("get", "/v1/{app_id}/backends"),
    ("post", "/v1/{app_id}/backends"),
    ("get", "/v1/{app_id}/backends/{backend_id}"),
    ("delete", "/v1/{app_id}/backends/{backend_id}"),
    ("patch", "/v1/{app_id}/backends/{backend_id}"),
    ("patch", "/v1/{app_id}/backends/{backend_id}/app"),
    ("patch", "/v1/{app_id}/backends/{backend_id}/weight"),
    ("get", "/v1/{app_id}/select"),
    ("get", "/v1/{app_id}/policy"),
    ("put", "/v1/{app_id}/policy"),
    ("get", "/v1/policies"),
    ("get", "/v1/backends"),
}
CREATE_AND_MOVE = {
    ("post", "/v1/{app_id}/backends"),
    ("patch", "/v1/{app_id}/backends/{backend_id}/app"),
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
DOC_PAGES = ["/api/docs/", "/api/redoc/"]

# Every URL a docs page makes the browser load: tags' src/href, ReDoc's spec-url, and the
# `url: "..."` Swagger UI is configured with.
ASSET_PATTERNS = [
    re.compile(r"<script\b[^>]*\bsrc=[\"']([^\"']+)[\"']", re.IGNORECASE),
    re.compile(r"<link\b[^>]*\bhref=[\"']([^\"']+)[\"']", re.IGNORECASE),
    re.compile(r"\bspec-url=[\"']([^\"']+)[\"']", re.IGNORECASE),
    re.compile(r"\burl\s*:\s*[\"']([^\"']+)[\"']"),
]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def _status_codes(operation: dict[str, Any]) -> set[str]:
    return {str(code) for code in operation["responses"]}


def _referenced_urls(html: str) -> list[str]:
    return [url for pattern in ASSET_PATTERNS for url in pattern.findall(html)]


@pytest.fixture
def site_static(settings: Any, tmp_path: Any) -> None:
    """Serve static files the way a development site does, whatever DEBUG was at import.

    pytest-django runs with DEBUG off; with the manifest storage of a DEBUG=0 settings module
    `{% static %}` needs a prior `collectstatic`. Plain storage plus WhiteNoise's finders
    serve the apps' files directly, as `DEBUG=1` does. The middleware reads these settings
    when a test client loads it, so every `Client()` made after this fixture sees them.
    """
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = True
    settings.STATIC_ROOT = tmp_path  # exists, so WhiteNoise does not warn about a missing one
    settings.WHITENOISE_AUTOREFRESH = False


def test_spectacular_validate_fail_on_warn_passes(tmp_path: Any) -> None:
    out = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))

    document = yaml.safe_load(out.read_text())
    assert document["openapi"].startswith("3.")
    assert document["paths"], "the schema documents no path at all"


def test_schema_has_every_route_of_the_spec(schema: dict[str, Any]) -> None:
    routes = {(method, path) for method, path, _ in _operations(schema)}

    assert SPEC_ROUTES - routes == set(), "spec routes missing from the schema"


def test_every_operation_has_summary_and_tags(schema: dict[str, Any]) -> None:
    for method, path, operation in _operations(schema):
        label = f"{method.upper()} {path}"
        assert operation.get("summary", "").strip(), f"{label} has no summary"
        assert operation.get("tags"), f"{label} has no tags"
        assert operation.get("operationId"), f"{label} has no operationId"


def test_every_operation_documents_its_error_responses(schema: dict[str, Any]) -> None:
    missing: list[str] = []
    for method, path, operation in _operations(schema):
        expected = {"401", "403"}
        # 400 needs some input to be wrong: a parameter or a body. `GET /v1/policies` has
        # neither, so documenting a 400 there would describe a response that cannot happen.
        if operation.get("parameters") or operation.get("requestBody"):
            expected.add("400")
        if "{backend_id}" in path:
            expected.add("404")
        if (method, path) in CREATE_AND_MOVE:
            expected.add("409")
        if path.endswith("/select"):
            expected.add("503")
        absent = expected - _status_codes(operation)
        if absent:
            missing.append(f"{method.upper()} {path}: {sorted(absent)}")

    assert missing == []


def test_every_operation_documents_success_and_error_shapes(schema: dict[str, Any]) -> None:
    for method, path, operation in _operations(schema):
        label = f"{method.upper()} {path}"
        responses = operation["responses"]
        successes = [code for code in responses if str(code).startswith("2")]
        assert successes, f"{label} documents no success response"
        for code, response in responses.items():
            if str(code) == "204":
                assert "content" not in response, f"{label} 204 must have no body"
                continue
            content = response.get("content", {})
            if path.endswith("/images/{index}") and str(code) == "200":
                # The result image proxy answers with the image itself.
                assert content["image/*"]["schema"] == {"type": "string", "format": "binary"}
                continue
            assert "application/json" in content, f"{label} {code} has no JSON body shape"
            assert content["application/json"].get("schema"), f"{label} {code} has no schema"


def _body_schema(schema: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    name = body["$ref"].rsplit("/", 1)[-1] if "$ref" in body else None
    return schema["components"]["schemas"][name] if name else body


@pytest.mark.parametrize(
    ("method", "path", "fields"),
    [
        ("post", "/v1/{app_id}/backends", {"name", "host"}),
        ("patch", "/v1/{app_id}/backends/{backend_id}/weight", {"weight"}),
        ("put", "/v1/{app_id}/policy", {"policy"}),
    ],
)
def test_bodies_the_spec_requires_are_required(
    schema: dict[str, Any], method: str, path: str, fields: set[str]
) -> None:
    # Only these routes take their input from the body alone; status and move also accept
    # a query parameter, so their bodies are rightly optional.
    operation = schema["paths"][path][method]

    assert operation["requestBody"].get("required") is True, f"{method} {path}: body optional"
    assert fields <= set(_body_schema(schema, operation).get("required", []))


def test_operation_descriptions_are_their_own(schema: dict[str, Any]) -> None:
    # A view without a description inherits its base class's docstring, which then shows in
    # Swagger UI and ReDoc as the text of unrelated operations.
    seen: dict[str, str] = {}
    shared: list[str] = []
    for method, path, operation in _operations(schema):
        text = operation.get("description", "").strip()
        if not text:
            continue
        label = f"{method.upper()} {path}"
        if text in seen:
            shared.append(f"{label} repeats the description of {seen[text]}: {text[:60]!r}")
        seen.setdefault(text, label)

    assert shared == []


def test_selection_documents_no_backend_available(schema: dict[str, Any]) -> None:
    select = schema["paths"]["/v1/{app_id}/select"]["get"]

    assert "503" in _status_codes(select)


@pytest.mark.django_db
def test_schema_endpoint_is_public() -> None:
    response = Client().get("/api/schema/")

    assert response.status_code == 200
    document = yaml.safe_load(response.content)
    assert set(SPEC_ROUTES) <= {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


@pytest.mark.django_db
@pytest.mark.parametrize("page", DOC_PAGES)
def test_docs_page_is_public_and_loads_only_local_assets(site_static: None, page: str) -> None:
    client = Client()

    response = client.get(page)

    assert response.status_code == 200
    html = response.content.decode()
    urls = _referenced_urls(html)
    assert any(url.endswith(".js") for url in urls), f"{page} references no script: {urls}"
    remote = [url for url in urls if not url.startswith("/") or url.startswith("//")]
    assert remote == [], f"{page} loads from outside the site: {remote}"
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, (
            f"{page} references {url}, which answers {asset.status_code}"
        )
        if hasattr(asset, "close"):
            asset.close()
