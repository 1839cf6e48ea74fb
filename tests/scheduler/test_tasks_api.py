"""The task routes against a real loopback ComfyOne server: submit by policy with fallback,
upstream errors, listing, detail, cancel and the result image proxy."""

from __future__ import annotations

import time

import pytest

from scheduler import services
from scheduler.models import Task
from tests.scheduler.test_views import snapshot

pytestmark = pytest.mark.django_db(transaction=True)


def submit(api, app_id="txt2img", **body):
    body = {"workflow_id": "wf_1", "inputs": [{"id": "5", "params": {"width": 640}}]} | body
    return api.post(f"/v1/{app_id}/tasks", body, format="json")


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def backends(make_backend, comfyone_settings):
    return [make_backend(name="one", host="inst-1"), make_backend(name="two", host="inst-2")]


class TestSubmit:
    def test_pins_the_task_to_the_selected_backend(self, api, backends, fake_comfyone):
        response = submit(api, free_gpu=True, free_cache=False)
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["status"], body["backend_host"], body["app_id"]) == (
            "pending",
            "inst-1",
            "txt2img",
        )
        sent = fake_comfyone.tasks[body["task_id"]].body
        assert sent == {
            "workflow_id": "wf_1",
            "inputs": [{"id": "5", "params": {"width": 640}}],
            "free_cache": False,
            "free_gpu": True,
            "backend": "inst-1",
        }
        assert Task.objects.get(task_id=body["task_id"]).backend == backends[0]

    def test_follows_the_round_robin_policy(self, api, backends, fake_comfyone):
        services.policy_set(app_id="txt2img", policy="round_robin")
        hosts = [submit(api).json()["backend_host"] for _ in range(4)]
        assert hosts == ["inst-1", "inst-2", "inst-1", "inst-2"]

    def test_flat_inputs_are_accepted(self, api, backends, fake_comfyone):
        body = submit(api, inputs=[{"id": "5", "width": 800}]).json()
        assert fake_comfyone.tasks[body["task_id"]].body["inputs"] == [
            {"id": "5", "params": {"width": 800}}
        ]

    def test_unknown_backend_upstream_falls_back_to_the_next(
        self, api, make_backend, comfyone_settings, fake_comfyone
    ):
        make_backend(name="ghost", host="inst-unknown")
        make_backend(name="real", host="inst-2")
        body = submit(api).json()
        assert body["backend_host"] == "inst-2"
        submits = [r for r in fake_comfyone.requests if r[:2] == ("POST", "/v1/prompts")]
        assert [r[2]["backend"] for r in submits] == ["inst-unknown", "inst-2"]

    def test_down_backend_upstream_falls_back(self, api, backends, fake_comfyone):
        from comfyone_sdk import ComfyOne

        with ComfyOne("test-key", base_url=fake_comfyone.base_url) as client:
            client.backends.set_state("inst-1", "down")
        assert submit(api).json()["backend_host"] == "inst-2"

    def test_every_backend_refused_is_502_with_upstream_code(
        self, api, make_backend, comfyone_settings, fake_comfyone
    ):
        make_backend(name="a", host="nope-1")
        make_backend(name="b", host="nope-2")
        before = snapshot()
        response = submit(api)
        assert response.status_code == 502
        body = response.json()
        assert body["code"] == "upstream_error" and body["upstream_code"] == 2007
        assert "nope-2" in body["upstream_msg"] and "a, b" in body["detail"]
        assert not Task.objects.exists() and snapshot()[:2] == before[:2]

    def test_other_upstream_refusal_is_502_without_fallback(self, api, backends, fake_comfyone):
        fake_comfyone.envelope_error_next(
            2006, "this service has no backend yet", path_prefix="/v1/prompts"
        )
        response = submit(api)
        assert response.status_code == 502
        assert response.json()["upstream_code"] == 2006
        assert response.json()["upstream_msg"] == "this service has no backend yet"
        assert fake_comfyone.count("POST", "/v1/prompts") == 1
        assert not Task.objects.exists()

    def test_upstream_unreachable_is_502(self, api, backends, settings):
        settings.SCHEDULER = {
            "COMFYONE_API_KEY": "k",
            "COMFYONE_BASE_URL": "http://127.0.0.1:9",
            "COMFYONE_TIMEOUT": 2.0,
        }
        response = submit(api)
        assert response.status_code == 502
        assert "could not be reached" in response.json()["detail"]

    def test_no_active_backend_is_503(self, api, make_backend, comfyone_settings):
        make_backend(status="down", host="inst-1")
        response = submit(api)
        assert (response.status_code, response.json()["code"]) == (503, "no_backend_available")

    def test_without_an_api_key_is_503(self, api, make_backend, settings, monkeypatch):
        monkeypatch.delenv("COMFYONE_API_KEY", raising=False)
        settings.SCHEDULER = {}
        make_backend()
        response = submit(api)
        assert (response.status_code, response.json()["code"]) == (503, "comfyone_not_configured")

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"workflow_id": ""}, "workflow_id"),
            ({"workflow_id": 5}, "workflow_id"),
            ({"inputs": "x"}, "inputs"),
            ({"inputs": [{"params": {}}]}, "inputs[0].id"),
            ({"inputs": [{"id": "5", "params": []}]}, "inputs[0].params"),
            ({"free_gpu": "maybe"}, "free_gpu"),
        ],
    )
    def test_bad_input_is_400_naming_the_field(self, api, backends, fake_comfyone, body, field):
        response = submit(api, **body)
        assert response.status_code == 400
        assert field in response.json(), response.json()
        assert not Task.objects.exists() and not fake_comfyone.tasks

    def test_non_staff_cannot_submit(self, reader, backends, fake_comfyone):
        assert submit(reader).status_code == 403
        assert not fake_comfyone.tasks


class TestReadAndCancel:
    def test_list_filters_and_pages(self, api, backends, fake_comfyone):
        fake_comfyone.hold()
        ids = [submit(api).json()["task_id"] for _ in range(3)]
        Task.objects.filter(task_id=ids[0]).update(status="failed")
        page = api.get("/v1/tasks?limit=2").json()
        assert (page["count"], page["limit"], page["offset"]) == (3, 2, 0)
        assert [t["task_id"] for t in page["results"]] == [ids[2], ids[1]]
        page = api.get("/v1/tasks?limit=2&offset=2").json()
        assert [t["task_id"] for t in page["results"]] == [ids[0]]
        assert api.get("/v1/tasks?status=failed").json()["count"] == 1
        assert api.get("/v1/tasks?app_id=other").json()["count"] == 0

    @pytest.mark.parametrize(
        "query",
        ["limit=0", "limit=101", "offset=-1", "status=done", "app_id=has%20space", "limit=abc"],
    )
    def test_bad_list_query(self, api, query):
        response = api.get(f"/v1/tasks?{query}")
        assert response.status_code == 400
        assert query.split("=")[0] in response.json()

    def test_detail_and_visibility(self, api, reader, backends, fake_comfyone):
        task_id = submit(api).json()["task_id"]
        assert api.get(f"/v1/tasks/{task_id}").json()["task_id"] == task_id
        # A non-staff user sees only the tasks they submitted.
        assert reader.get(f"/v1/tasks/{task_id}").status_code == 404
        assert reader.get("/v1/tasks").json()["count"] == 0
        assert api.get("/v1/tasks/unknown").status_code == 404

    def test_cancel_open_task(self, api, backends, fake_comfyone):
        fake_comfyone.hold()
        task_id = submit(api).json()["task_id"]
        response = api.post(f"/v1/tasks/{task_id}/cancel")
        assert (response.status_code, response.json()["status"]) == (200, "cancelled")
        assert fake_comfyone.tasks[task_id].status == "cancel"
        again = api.post(f"/v1/tasks/{task_id}/cancel")
        assert (again.status_code, again.json()["code"]) == (409, "task_ended")

    def test_result_image_proxy(self, api, backends, fake_comfyone):
        from comfyone_sdk import ComfyOne

        task_id = submit(api).json()["task_id"]
        assert wait_for(lambda: fake_comfyone.tasks[task_id].status == "finished")
        with ComfyOne("test-key", base_url=fake_comfyone.base_url) as client:
            services.task_apply_status(task_id=task_id, status=client.prompts.status(task_id))
        response = api.get(f"/v1/tasks/{task_id}/images/0")
        assert response.status_code == 200
        assert response["Content-Type"] == "image/png"
        assert response.content.startswith(b"\x89PNG")
        assert "test-key" not in str(response.headers)
        assert api.get(f"/v1/tasks/{task_id}/images/1").status_code == 404
