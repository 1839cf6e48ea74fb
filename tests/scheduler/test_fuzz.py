"""Schemathesis over the whole API schema, in-process: nothing a client sends produces a
server error the schema does not document, every response (success or error) has a status
code and body shape the schema documents, and input the schema forbids is rejected.

Requests carry a staff user's token, so the writes are exercised past the permission check;
for about half the generated cases the app (and the backend the path names) exists with an
active backend, so the success paths are fuzzed as well as the 404/503 ones.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from scheduler.models import Backend, BackendStatus

FUZZ = uuid.UUID("9b0c4c4e-5d1a-4c53-9a55-0f5b7e3f2a10")  # namespace of the backends made here
APP_ID = re.compile(r"\A[A-Za-z0-9_.-]{1,64}\Z")
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    negative_data_rejection,
]


def _documented_server_errors() -> list[dict[str, Any]]:
    """Per operation, the 5xx answers its schema documents (selection's 503
    `no_backend_available`, an upstream's 502): those are the API's answers, not crashes.
    Any other 5xx still fails `not_a_server_error`, and an undocumented one fails
    `status_code_conformance` too."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    configs = []
    for item in document["paths"].values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            documented = sorted(str(code) for code in operation["responses"] if str(code)[0] == "5")
            if documented:
                statuses = ["2xx", "3xx", "4xx", *documented]
                configs.append(
                    {
                        "include-operation-id": operation["operationId"],
                        "checks": {"not_a_server_error": {"expected-statuses": statuses}},
                    }
                )
    return configs


CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {"seed": 20261204, "operations": _documented_server_errors()}
)
schema = schemathesis.openapi.from_wsgi(
    "/api/schema/?format=json", get_wsgi_application(), config=CONFIG
)


@pytest.fixture
def staff_token(transactional_db: Any) -> str:
    user = get_user_model().objects.create_user("fuzz-staff", password="pw-fuzz", is_staff=True)
    return Token.objects.create(user=user).key


def _chosen(*parts: str) -> bool:
    """A stable coin flip per generated input, so a failing example replays identically."""
    return hashlib.sha256("|".join(parts).encode()).digest()[0] % 2 == 0


def _prepare_existing(path_parameters: dict[str, Any]) -> None:
    """Make the app of this case hold an active backend, with the case's backend_id if any."""
    app_id = path_parameters.get("app_id")
    if not isinstance(app_id, str) or not APP_ID.match(app_id):
        return
    raw_id = path_parameters.get("backend_id")
    try:
        backend_id = uuid.UUID(str(raw_id)) if raw_id is not None else uuid.uuid5(FUZZ, app_id)
    except ValueError:
        return
    if not _chosen(app_id, str(backend_id)) or Backend.objects.filter(id=backend_id).exists():
        return
    Backend.objects.create(
        id=backend_id,
        app_id=app_id,
        name=f"fuzz-{backend_id}",
        host=f"http://fuzz-{backend_id}:8188",
        status=BackendStatus.ACTIVE,
    )


@schema.parametrize()
@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    # The token fixture is function-scoped on purpose (one user for all of an operation's
    # examples), and some operations filter many generated inputs: neither is a problem.
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.django_db(transaction=True)
def test_api_conforms_to_its_schema(case: Any, staff_token: str) -> None:
    _prepare_existing(case.path_parameters or {})

    case.call_and_validate(headers={"Authorization": f"Token {staff_token}"}, checks=CHECKS)
