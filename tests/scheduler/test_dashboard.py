"""The dashboard page: rendered by the Django test client, then live in a real browser.

The browser test runs the whole chain: headless Chromium logged in through the admin form, a
uvicorn site with the embedded relay, and the loopback ComfyOne server running the tasks.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.urls import reverse

from scheduler.models import Task, TaskStatus
from tests.livesite import ROOT, LiveSite

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = ROOT / "test-output" / "dashboard.png"
PASSWORD = "dashboard-test-pw-7781"  # a throwaway user in a throwaway database
APP_ID = "txt2img"
GRAPH: dict[str, Any] = {
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat"}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["5", 0]}},
}
WORKFLOW_INPUTS = [{"id": "6", "type": "string", "name": "text"}]

ASSET_URL = re.compile(r'<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]+)"')


@pytest.fixture
def site_static(settings: Any, tmp_path: Path) -> None:
    """Serve the apps' static files without collectstatic, as `DEBUG=1` does.

    pytest-django runs with DEBUG off, and a settings module imported with DEBUG=0 uses the
    manifest storage, whose `{% static %}` needs a prior collectstatic.
    """
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = False
    settings.STATIC_ROOT = tmp_path


def _task(**fields: Any) -> Task:
    defaults: dict[str, Any] = {
        "app_id": APP_ID,
        "backend_host": "inst-1",
        "workflow_id": "wf_1",
        "inputs": [{"id": "6", "params": {"text": "a cat"}}],
    }
    return Task.objects.create(**{**defaults, **fields})


def _page_tasks(html: str) -> list[dict[str, Any]]:
    match = re.search(r'<script id="dashboard-tasks" type="application/json">(.*?)</script>', html)
    assert match, "the page carries no task JSON"
    return json.loads(match.group(1))


# --- the page, through the Django test client ---------------------------------------------


def test_anonymous_is_sent_to_the_admin_login(client: Any, db: Any) -> None:
    url = reverse("scheduler:dashboard")

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={url}"


def test_staff_sees_backends_and_tasks(
    client: Any, staff_user: Any, make_backend: Callable[..., Any], site_static: None
) -> None:
    make_backend(APP_ID, name="gpu-a", host="inst-1", weight=3)
    make_backend(APP_ID, name="gpu-b", host="inst-2", status="down")
    make_backend("upscale", name="gpu-c", host="inst-3")
    running = _task(task_id="t-running", status=TaskStatus.RUNNING, progress=40)
    failed = _task(
        task_id="t-failed", status=TaskStatus.FAILED, error_node="9", error_message="CUDA OOM"
    )
    client.force_login(staff_user)

    response = client.get(reverse("scheduler:dashboard"))

    assert response.status_code == 200
    html = response.content.decode()
    for text in ("txt2img", "upscale", "gpu-a", "gpu-b", "gpu-c", "inst-1", "inst-3"):
        assert text in html
    assert 'class="badge badge--down">Down<' in html
    assert 'class="badge badge--active">Active<' in html
    assert re.search(r'<td class="num">3</td>', html), "the weight is not shown"
    tasks = _page_tasks(html)
    assert [t["task_id"] for t in tasks] == [failed.task_id, running.task_id]  # newest first
    assert tasks[0]["error_message"] == "CUDA OOM"
    assert tasks[1]["progress"] == 40
    assert 'data-can-cancel="true"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'data-task-url="/v1/tasks/__TASK_ID__"' in html


def test_page_assets_are_local_and_served(client: Any, staff_user: Any, site_static: None) -> None:
    client.force_login(staff_user)

    html = client.get(reverse("scheduler:dashboard")).content.decode()

    assets = ASSET_URL.findall(html)
    assert any(a.endswith("scheduler/dashboard.js") for a in assets), assets
    assert any(a.endswith("scheduler/dashboard.css") for a in assets), assets
    for url in assets:
        if url.startswith("data:"):  # the inline favicon: nothing to fetch
            continue
        assert url.startswith("/") and not url.startswith("//"), f"{url} is not a local URL"
        response = client.get(url)
        assert response.status_code == 200, url
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert body.strip(), f"{url} is empty"
    assert not re.search(r'(?:src|href|action)="(?:https?:)?//', html), "a remote URL"


def test_reader_gets_no_cancel_buttons(client: Any, plain_user: Any, site_static: None) -> None:
    client.force_login(plain_user)

    response = client.get(reverse("scheduler:dashboard"))

    assert response.status_code == 200
    assert 'data-can-cancel="false"' in response.content.decode()


def test_task_and_backend_text_is_escaped(
    client: Any, staff_user: Any, make_backend: Callable[..., Any], site_static: None
) -> None:
    make_backend(APP_ID, name="<b>bold</b>", host="inst-1")
    evil = "</script><script>alert(1)</script>"
    _task(task_id="t-evil", status=TaskStatus.FAILED, error_message=evil)
    client.force_login(staff_user)

    html = client.get(reverse("scheduler:dashboard")).content.decode()

    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert evil not in html
    assert _page_tasks(html)[0]["error_message"] == evil


# --- the page, live in a real browser -----------------------------------------------------
# One site, one loopback ComfyOne and one browser for the module: starting them (with a
# collectstatic) is most of the cost.


def _need_browser() -> None:
    """Skip (or, under REQUIRE_SERVICES=1, fail) when Chromium or its driver is missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    message = f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}, and REQUIRE_SERVICES=1 makes it required")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1360,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def fake() -> Iterator[Any]:
    from tests.support.comfyone_server import FakeComfyOne

    # Slow enough steps that the page visibly passes through pending and running.
    with FakeComfyOne(api_key="test-key", step_delay=0.3) as server:
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, fake: Any, browser: Any) -> Iterator[LiveSite]:
    """The site under uvicorn with the embedded relay, run as in production (DEBUG off).

    DEBUG stays off on purpose: the page is then served exactly as deployed, through the
    manifest storage, which proves `collectstatic` picks up the dashboard's files and that
    their hashed URLs resolve. That costs one collectstatic (about 5 s) into a temp folder.
    It asks for `browser` first so that, without Chromium, nothing is started before the skip.
    """
    from comfyone_sdk import ComfyOne

    tmp_path = tmp_path_factory.mktemp("dashboard-site")
    with ComfyOne("test-key", base_url=fake.base_url) as client:
        client.backends.register("inst-1")
        workflow_id = client.workflows.create(
            name="txt2img", workflow=GRAPH, outputs=["9"], inputs=WORKFLOW_INPUTS
        ).id
    site = LiveSite(
        tmp_path,
        extra_env={
            "COMFYONE_RELAY": "embedded",
            "COMFYONE_API_KEY": "test-key",
            "COMFYONE_BASE_URL": fake.base_url,
            "STATIC_ROOT": str(tmp_path / "static"),
        },
    )
    # collectstatic needs no database: run it beside the migrations instead of after them.
    collectstatic = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "collectstatic", "--noinput", "-v", "0"],
        env=site.env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    with site:
        site.manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; "
            "u = get_user_model().objects.get(username='live-admin'); "
            f"u.set_password('{PASSWORD}'); u.save()",
        )
        output, _ = collectstatic.communicate(timeout=120)
        assert collectstatic.returncode == 0, output.decode(errors="replace")
        site.start(1)
        response = requests.post(
            f"{site.urls[0]}/v1/{APP_ID}/backends",
            json={"name": "gpu-a", "host": "inst-1", "weight": 2},
            headers=site.headers,
            timeout=10,
        )
        assert response.status_code == 201, response.text
        site.workflow_id = workflow_id  # type: ignore[attr-defined]
        yield site
        for log in site.logs:  # shown by pytest when a test failed
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}")


def _submit(site: LiveSite, text: str) -> str:
    response = requests.post(
        f"{site.urls[0]}/v1/{APP_ID}/tasks",
        json={
            "workflow_id": site.workflow_id,  # type: ignore[attr-defined]
            "inputs": [{"id": "6", "params": {"text": text}}],
        },
        headers=site.headers,
        timeout=15,
    )
    assert response.status_code == 201, response.text
    return response.json()["task_id"]


# Reads one task's row as the user sees it; null while the row is not there.
ROW_STATE_JS = """
const tr = document.querySelector(`tr[data-task-id="${arguments[0]}"]`);
if (!tr) return null;
const bar = tr.querySelector('[role=progressbar]');
const badge = tr.querySelector('.badge');
const text = (selector) => (tr.querySelector(selector) || {}).textContent || null;
return {
  status: badge ? badge.dataset.status : null,
  badgeText: badge ? badge.textContent : null,
  statusText: tr.cells[1].textContent,
  progress: bar ? Number(bar.getAttribute('aria-valuenow')) : null,
  percentText: text('.progress__pct'),
  queue: text('.queue'),
  images: [...tr.querySelectorAll('img')].map((img) => img.getAttribute('src')),
  loaded: [...tr.querySelectorAll('img')].map((img) => img.complete && img.naturalWidth > 0),
  error: text('.error'),
  rowError: text('.row-error'),
  cancel: !!tr.querySelector('button'),
  index: [...tr.parentNode.children].indexOf(tr),
};
"""


def _row(driver: Any, task_id: str) -> dict[str, Any]:
    return driver.execute_script(ROW_STATE_JS, task_id) or {}


def _connection(driver: Any) -> str:
    return driver.execute_script("return document.getElementById('connection').dataset.state")


def _wait_for(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _follow_task(driver: Any, task_id: str, until: str | tuple[str, ...]) -> list[dict[str, Any]]:
    """Polls the task's row until its badge shows `until` (a status or a tuple of them);
    returns every distinct state the row went through."""
    wanted = (until,) if isinstance(until, str) else until
    seen: list[dict[str, Any]] = []

    def reached() -> bool:
        state = _row(driver, task_id)
        if state and (not seen or state != seen[-1]):
            seen.append(state)
        return state.get("status") in wanted

    try:
        _wait_for(reached, f"task {task_id} to show {until}", timeout=30)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the row went through {seen}") from None
    return seen


def _open_dashboard(driver: Any, site: LiveSite) -> None:
    """Opens the dashboard, logging in through the admin form if the session is not there yet."""
    from selenium.webdriver.common.by import By

    driver.get(f"{site.urls[0]}/dashboard/")
    if "/admin/login/" in driver.current_url:
        driver.find_element(By.NAME, "username").send_keys("live-admin")
        driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
    _wait_for(lambda: driver.current_url.endswith("/dashboard/"), "the dashboard")
    _wait_for(lambda: _connection(driver) == "live", "the socket to go live")


@pytest.mark.slow
@pytest.mark.browser
def test_dashboard_follows_tasks_live_and_reconnects(
    browser: Any, live: LiveSite, fake: Any
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{live.urls[0]}/dashboard/")
    assert "/admin/login/" in browser.current_url, "an anonymous visit must reach the login"
    _open_dashboard(browser, live)
    assert "gpu-a" in browser.find_element(By.CSS_SELECTOR, "main").text
    # Every asset came from this site: no CDN.
    origins = browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => new URL(e.name).origin)"
    )
    assert set(origins) <= {live.urls[0]}, origins

    # 1. A task arrives over the socket, passes through pending and running, and finishes.
    first = _submit(live, "a lighthouse")
    states = _follow_task(browser, first, until="finished")
    final = states[-1]
    assert final["progress"] == 100 and final["percentText"] == "100%"
    assert final["badgeText"] == final["statusText"] == "Finished"
    assert final["images"] == [f"/v1/tasks/{first}/images/0"]
    assert not final["cancel"], "an ended task offers no cancel button"
    in_progress = [s for s in states if s["status"] in ("pending", "running")]
    assert in_progress, f"the page never showed the task in progress: {states}"
    assert any(0 < s["progress"] < 100 for s in states), states
    assert any(s["queue"] for s in states if s["status"] == "pending"), states
    assert all(s["cancel"] for s in in_progress), "an open task must offer a cancel button"
    # The thumbnail loads through the site's image route (the ComfyOne key stays server-side).
    _wait_for(lambda: _row(browser, first)["loaded"] == [True], "the thumbnail to load")

    # 2. The socket drops: the indicator says so, and the page reconnects by itself.
    browser.execute_script("window.__dashboardSocket.close()")
    _wait_for(lambda: _connection(browser) == "reconnecting", "the reconnecting state")
    label = browser.find_element(By.CSS_SELECTOR, "#connection .conn__label").text
    assert label.startswith("Reconnecting"), label
    _wait_for(lambda: _connection(browser) == "live", "the socket to come back")
    assert browser.execute_script("return window.__dashboardSocket.readyState") == 1

    # ...and a task submitted afterwards still shows up live, at the top.
    second = _submit(live, "a harbour at dusk")
    states = _follow_task(browser, second, until="finished")
    assert states[-1]["progress"] == 100
    assert states[-1]["index"] == 0, "the newest task must be the first row"
    assert _row(browser, first)["index"] == 1

    # 3. A failing task shows its error and the failing node.
    fake.fail_next_task("9", "CUDA out of memory")
    failed = _submit(live, "too big")
    state = _follow_task(browser, failed, until="failed")[-1]
    assert "CUDA out of memory" in state["error"] and "Node 9" in state["error"], state

    # 4. A cancel the server refuses shows why, next to the button.
    fake.hold()
    held = _submit(live, "held in the queue")
    try:
        _wait_for(lambda: _row(browser, held).get("cancel"), "the cancel button")
        browser.execute_script(
            "window.__realFetch = window.fetch;"
            "window.fetch = () => Promise.resolve(new Response("
            "  JSON.stringify({detail: 'ComfyOne refused to cancel: busy', code: 'upstream'}),"
            "  {status: 502}));"
        )
        browser.find_element(By.CSS_SELECTOR, f'tr[data-task-id="{held}"] button').click()
        error = _wait_for(lambda: _row(browser, held).get("rowError"), "the cancel error")
        assert "ComfyOne refused to cancel: busy" in error
        assert _row(browser, held)["cancel"], "the button comes back for another try"
        browser.execute_script("window.fetch = window.__realFetch")

        errors = [
            entry
            for entry in browser.get_log("browser")
            # The admin login page has no favicon; the dashboard has an inline one.
            if entry["level"] == "SEVERE" and "/favicon.ico" not in entry["message"]
        ]
        assert not errors, errors
        SCREENSHOT.parent.mkdir(exist_ok=True)
        browser.execute_script("window.scrollTo(0, 0)")
        time.sleep(0.5)  # let the progress bars' width transition settle
        assert browser.save_screenshot(str(SCREENSHOT))
    finally:
        fake.release()
    _follow_task(browser, held, until="finished")


@pytest.mark.slow
@pytest.mark.browser
def test_cancel_button_cancels_the_task(browser: Any, live: LiveSite, fake: Any) -> None:
    from selenium.webdriver.common.by import By

    _open_dashboard(browser, live)
    fake.hold()
    try:
        task_id = _submit(live, "cancel me")
        _wait_for(lambda: _row(browser, task_id).get("cancel"), "the cancel button")
        # The real POST from the page, with the CSRF token.
        browser.find_element(By.CSS_SELECTOR, f'tr[data-task-id="{task_id}"] button').click()
        state = _follow_task(browser, task_id, until=("cancelled", "failed", "finished"))[-1]
    finally:
        fake.release()
    assert not state["cancel"] and not state["rowError"], state
    assert state["status"] == "cancelled", state
    assert state["badgeText"] == "Cancelled"


@pytest.mark.slow
@pytest.mark.browser
def test_signed_out_page_stops_retrying(browser: Any, live: LiveSite) -> None:
    from selenium.webdriver.common.by import By

    _open_dashboard(browser, live)
    browser.delete_cookie("sessionid")  # the session ends (say, a logout in another tab)
    browser.execute_script("window.__dashboardSocket.close()")

    # Refused handshakes, then the page notices the login is gone and says so.
    _wait_for(lambda: _connection(browser) == "signed-out", "the signed-out state", timeout=15)
    link = browser.find_element(By.CSS_SELECTOR, "#connection a")
    assert link.text == "sign in again"
    link.click()
    assert "/admin/login/" in browser.current_url
