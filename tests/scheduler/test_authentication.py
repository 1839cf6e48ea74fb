"""The cached token authentication: one query per key per process, forgotten on change."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from scheduler.authentication import token_cache_clear

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    token_cache_clear()
    yield
    token_cache_clear()


def queries(client, path="/v1/policies"):
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return [q["sql"] for q in captured.captured_queries if "authtoken_token" in q["sql"]]


def test_second_request_skips_the_token_query(api):
    assert len(queries(api)) == 1
    assert queries(api) == []


def test_cache_off(api, settings):
    settings.SCHEDULER = {"TOKEN_CACHE_SECONDS": 0}
    assert len(queries(api)) == 1
    assert len(queries(api)) == 1


def test_deleted_token_is_refused_at_once(api, staff_user):
    queries(api)
    Token.objects.filter(user=staff_user).delete()
    assert api.get("/v1/policies").status_code == 401


def test_deactivated_user_is_refused_at_once(api, staff_user):
    queries(api)
    staff_user.is_active = False
    staff_user.save()
    assert api.get("/v1/policies").status_code == 401


def test_demoted_user_loses_write_rights_at_once(api, staff_user):
    queries(api)
    staff_user.is_staff = False
    staff_user.save()
    response = api.post("/v1/a/backends", {"name": "n", "host": "h"}, format="json")
    assert response.status_code == 403


def test_each_request_gets_its_own_user_object(api, staff_user):
    from rest_framework.test import APIRequestFactory

    from scheduler.authentication import CachedTokenAuthentication

    key = Token.objects.get(user=staff_user).key
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Token {key}")
    first, _ = CachedTokenAuthentication().authenticate(request)
    second, _ = CachedTokenAuthentication().authenticate(request)
    assert first == second and first is not second
