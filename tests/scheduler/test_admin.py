"""The Django admin for backends and policies: listing, search, filters, edits and actions."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from scheduler.models import AppPolicy, Backend, Task

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/scheduler/backend/"


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("root", email="root@example.com")
    client.force_login(user)
    return client


def test_changelist_search_and_filters(admin_client, make_backend):
    make_backend(app_id="txt2img", name="alpha", host="http://alpha:8188")
    make_backend(app_id="upscale", name="beta", status="down")
    page = admin_client.get(CHANGELIST).content.decode()
    assert "alpha" in page and "beta" in page
    page = admin_client.get(CHANGELIST, {"q": "alpha:8188"}).content.decode()
    assert "alpha" in page and "beta" not in page
    page = admin_client.get(CHANGELIST, {"status__exact": "down"}).content.decode()
    assert "beta" in page and "alpha" not in page
    page = admin_client.get(CHANGELIST, {"app_id": "txt2img"}).content.decode()
    assert "alpha" in page and "beta" not in page


@pytest.mark.parametrize(
    ("action", "start", "end"), [("mark_down", "active", "down"), ("mark_active", "down", "active")]
)
def test_status_actions(admin_client, make_backend, action, start, end):
    chosen = [make_backend(status=start), make_backend(status=start)]
    untouched = make_backend(status=start)
    response = admin_client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [str(b.pk) for b in chosen]},
        follow=True,
    )
    assert response.status_code == 200
    assert f"Marked 2 backend(s) {end}." in response.content.decode()
    assert {b.status for b in Backend.objects.filter(pk__in=[b.pk for b in chosen])} == {end}
    assert Backend.objects.get(pk=untouched.pk).status == start


def test_inline_edit_of_weight_and_status(admin_client, make_backend):
    backend = make_backend(weight=1)
    response = admin_client.post(
        CHANGELIST,
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-MIN_NUM_FORMS": "0",
            "form-MAX_NUM_FORMS": "1000",
            "form-0-id": str(backend.pk),
            "form-0-weight": "9",
            "form-0-status": "down",
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    backend.refresh_from_db()
    assert (backend.weight, backend.status) == (9, "down")


def test_inline_edit_rejects_bad_weight(admin_client, make_backend):
    backend = make_backend(weight=3)
    response = admin_client.post(
        CHANGELIST,
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-MIN_NUM_FORMS": "0",
            "form-MAX_NUM_FORMS": "1000",
            "form-0-id": str(backend.pk),
            "form-0-weight": "0",
            "form-0-status": "active",
            "_save": "Save",
        },
    )
    assert response.status_code == 200
    backend.refresh_from_db()
    assert backend.weight == 3


def test_add_and_change_forms_go_through_services(admin_client, make_backend, caplog):
    caplog.set_level("INFO", logger="scheduler.services")
    response = admin_client.post(
        "/admin/scheduler/backend/add/",
        {
            "app_id": "txt2img",
            "name": "new",
            "host": "http://new",
            "weight": "2",
            "status": "active",
        },
    )
    assert response.status_code == 302
    backend = Backend.objects.get(name="new")
    assert "backend registered: new" in caplog.text
    response = admin_client.post(
        f"/admin/scheduler/backend/{backend.pk}/change/",
        {
            "app_id": "img2img",
            "name": "new",
            "host": "http://new",
            "weight": "2",
            "status": "active",
        },
    )
    assert response.status_code == 302
    assert Backend.objects.get(pk=backend.pk).app_id == "img2img"
    assert f"backend {backend.pk} changed: app_id" in caplog.text


def test_add_form_shows_uniqueness_errors(admin_client, make_backend):
    make_backend(name="dup", host="http://dup")
    response = admin_client.post(
        "/admin/scheduler/backend/add/",
        {
            "app_id": "txt2img",
            "name": "other",
            "host": "http://dup",
            "weight": "1",
            "status": "active",
        },
    )
    assert response.status_code == 200
    assert "Backend with this Host already exists." in response.content.decode()
    assert Backend.objects.count() == 1


def test_delete_action(admin_client, make_backend):
    backend = make_backend()
    response = admin_client.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [str(backend.pk)], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Backend.objects.exists()


def test_policy_admin_offers_registered_policies_and_saves(admin_client):
    page = admin_client.get("/admin/scheduler/apppolicy/add/").content.decode()
    for name in ("round_robin", "weighted", "all_active", "random"):
        assert f'value="{name}"' in page
    response = admin_client.post(
        "/admin/scheduler/apppolicy/add/", {"app_id": "txt2img", "policy": "weighted", "limit": "2"}
    )
    assert response.status_code == 302
    assert AppPolicy.objects.get(app_id="txt2img").policy == "weighted"
    response = admin_client.post(
        "/admin/scheduler/apppolicy/add/", {"app_id": "x", "policy": "nope", "limit": ""}
    )
    assert response.status_code == 200
    assert not AppPolicy.objects.filter(app_id="x").exists()


def test_task_admin_lists_but_does_not_edit(admin_client):
    Task.objects.create(task_id="t-1", app_id="txt2img", backend_host="h", workflow_id="wf")
    page = admin_client.get("/admin/scheduler/task/").content.decode()
    assert "t-1" in page
    assert admin_client.get("/admin/scheduler/task/add/").status_code == 403


@pytest.mark.parametrize(
    ("value", "error_id"),
    [
        ({"RELAY": "sometimes"}, "scheduler.E007"),
        ({"BACKEND_REFUSED_CODES": "2007"}, "scheduler.E008"),
        ({"COMFYONE_TIMEOUT": 0}, "scheduler.E009"),
        ({"NOPE": 1}, "scheduler.E002"),
        ({"POLICIES": ["no.such.Policy"]}, "scheduler.E004"),
        ({"DEFAULT_POLICY": "fastest"}, "scheduler.E006"),
    ],
)
def test_system_checks_report_bad_settings(settings, value, error_id):
    from scheduler.checks import check_scheduler_settings

    settings.SCHEDULER = value
    assert error_id in [error.id for error in check_scheduler_settings()]
