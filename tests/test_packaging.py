"""The distribution installs the way the README promises, from a wheel, into nothing but a
fresh virtual environment.

Proves that the wheel built from this repository gives, with `pip install <wheel>`, the SDK
and its `comfyone` command without Django; and, with `pip install "<wheel>[scheduler]"`, a
scheduler app that a brand-new `django-admin startproject` site can install by adding
`rest_framework`, `rest_framework.authtoken` and `scheduler` to `INSTALLED_APPS` and
mounting `scheduler.urls` under any prefix: it migrates, serves, and answers the API.

Needs the package index (pip downloads the dependencies); without it the tests skip, saying
so, and under `REQUIRE_SERVICES=1` they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parent.parent
INDEX_URL = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/").rstrip("/") + "/"
# What a checkout holds besides the sources: never copied into the build tree.
NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    "build",
    "dist",
    "db.sqlite3*",
    "staticfiles",
    ".hypothesis",
    ".pytest_cache",
    ".ruff_cache",
    "test-output",
)
# Variables of this test process that would make the subprocesses use the repository's
# code or settings instead of what the wheel installed.
LEAKY_ENV = (
    "DJANGO_SETTINGS_MODULE",
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "DEBUG",
    "SECRET_KEY",
    "DATABASE_URL",
    "ALLOWED_HOSTS",
)
PIP_TIMEOUT = 600
STEP_TIMEOUT = 120


def _clean_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in LEAKY_ENV}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PYTHONDONTWRITEBYTECODE="1")
    return env


def _run(args: list[str | Path], *, cwd: Path, timeout: float = STEP_TIMEOUT) -> str:
    """Run a command to completion; on failure show everything it printed."""
    try:
        done = subprocess.run(
            [str(arg) for arg in args],
            cwd=cwd,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"{args} did not finish in {timeout} s; output so far:\n{exc.stdout}\n{exc.stderr}"
        )
    if done.returncode != 0:
        pytest.fail(
            f"{args} exited with {done.returncode}\n"
            f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
        )
    return done.stdout


def _index_unreachable() -> str | None:
    request = urllib.request.Request(
        INDEX_URL + "pip/", headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html"}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            response.read(1)
    except (OSError, urllib.error.URLError) as exc:
        return f"the package index {INDEX_URL} is unreachable ({exc})"
    return None


@pytest.fixture(scope="module")
def package_index() -> None:
    problem = _index_unreachable()
    if problem is None:
        return
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{problem}, and REQUIRE_SERVICES=1 makes it required")
    pytest.skip(f"{problem}: cannot install the wheel's dependencies")


@pytest.fixture(scope="module")
def wheel(package_index: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built in an isolated environment from a copy of the checkout, so the build's
    `build/` and `*.egg-info` never land in the working tree."""
    root = tmp_path_factory.mktemp("build")
    source = root / "src"
    shutil.copytree(REPO, source, ignore=NOT_SOURCES)
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", root / "dist", source], cwd=root)
    wheels = list((root / "dist").glob("comfyone_toolkit-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def sdk_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with `pip install <wheel>`: the SDK alone."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", venv], cwd=venv.parent)
    _run(
        [venv / "bin/python", "-m", "pip", "install", "--quiet", wheel],
        cwd=venv.parent,
        timeout=PIP_TIMEOUT,
    )
    return venv


@pytest.fixture(scope="module")
def scheduler_venv(sdk_venv: Path, wheel: Path) -> Path:
    """The same environment after `pip install "<wheel>[scheduler]"`."""
    _run(
        [sdk_venv / "bin/python", "-m", "pip", "install", "--quiet", f"{wheel}[scheduler]"],
        cwd=sdk_venv.parent,
        timeout=PIP_TIMEOUT,
    )
    return sdk_venv


def test_wheel_holds_both_packages_and_nothing_of_the_site(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())

    for required in (
        "comfyone_sdk/__init__.py",
        "comfyone_sdk/py.typed",
        "scheduler/__init__.py",
        "scheduler/py.typed",
        "scheduler/urls.py",
        "scheduler/migrations/0001_initial.py",
    ):
        assert required in names, f"{required} is missing from {wheel.name}"
    top_level = {name.split("/")[0] for name in names}
    assert top_level - {"comfyone_sdk", "scheduler"} == {
        name for name in top_level if name.endswith(".dist-info")
    }, f"the wheel ships more than the two packages: {sorted(top_level)}"
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/METADATA")))
    assert b"Provides-Extra: scheduler" in metadata


def test_plain_install_gives_the_sdk_and_its_command_without_django(sdk_venv: Path) -> None:
    python = sdk_venv / "bin/python"
    cwd = sdk_venv.parent  # not the checkout: `import` must find the installed copy

    location = _run(
        [
            python,
            "-c",
            "import importlib.util, sys, comfyone_sdk; "
            "assert importlib.util.find_spec('django') is None, 'Django is installed'; "
            "assert 'django' not in sys.modules; "
            "print(comfyone_sdk.__file__)",
        ],
        cwd=cwd,
    )
    assert Path(location.strip()).is_relative_to(sdk_venv), location

    command = sdk_venv / "bin/comfyone"
    assert command.exists(), "pip install did not create the `comfyone` console script"
    help_text = _run([command, "--help"], cwd=cwd)
    assert "usage: comfyone" in help_text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(process: subprocess.Popen[str], port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"runserver exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"runserver did not listen on port {port} within 60 s:\n{log.read_text()}")


def _call(
    method: str, url: str, *, token: str | None = None, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    headers = {"Accept": "application/json"}
    data = None
    if token is not None:
        headers["Authorization"] = f"Token {token}"
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, kind, raw = response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        status, kind, raw = exc.code, exc.headers["Content-Type"], exc.read()
    if raw and kind and kind.startswith("application/json"):
        return status, json.loads(raw)
    return status, raw.decode(errors="replace")


def _new_site(venv: Path, root: Path) -> Path:
    """`django-admin startproject`, plus exactly what the README tells a site owner to add."""
    site = root / "site"
    site.mkdir()
    _run([venv / "bin/django-admin", "startproject", "mysite", site], cwd=root)
    settings = site / "mysite/settings.py"
    settings.write_text(
        settings.read_text()
        + '\nINSTALLED_APPS += ["rest_framework", "rest_framework.authtoken", "scheduler"]\n'
    )
    urls = site / "mysite/urls.py"
    urls.write_text(
        urls.read_text()
        + "\nfrom django.urls import include  # noqa: E402\n\n"
        + 'urlpatterns += [path("api/", include("scheduler.urls"))]\n'
    )
    return site


def test_scheduler_extra_serves_the_api_in_a_brand_new_site(
    scheduler_venv: Path, tmp_path: Path
) -> None:
    python = scheduler_venv / "bin/python"
    site = _new_site(scheduler_venv, tmp_path)
    manage = [python, site / "manage.py"]

    where = _run([python, "-c", "import scheduler; print(scheduler.__file__)"], cwd=site)
    assert Path(where.strip()).is_relative_to(scheduler_venv), "scheduler not from the wheel"
    _run([*manage, "check", "--fail-level", "WARNING"], cwd=site)
    _run([*manage, "migrate", "--no-input", "-v", "0"], cwd=site)
    created = _run(
        [
            *manage,
            "shell",
            "-v",
            "0",
            "-c",
            "from django.contrib.auth import get_user_model\n"
            "from rest_framework.authtoken.models import Token\n"
            "user = get_user_model().objects.create_user('ops', password='pw-ops-123', "
            "is_staff=True)\n"
            "print('TOKEN=' + Token.objects.create(user=user).key)\n",
        ],
        cwd=site,
    )
    match = re.search(r"^TOKEN=(\w+)$", created, re.MULTILINE)
    assert match, created
    token = match.group(1)

    port = _free_port()
    log = tmp_path / "runserver.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(arg) for arg in (*manage, "runserver", f"127.0.0.1:{port}", "--noreload")],
            cwd=site,
            env=_clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        _wait_until_serving(server, port, log)
        api = f"http://127.0.0.1:{port}/api/v1"

        status, backend = _call(
            "POST",
            f"{api}/txt2img/backends",
            token=token,
            body={"name": "backend1", "host": "http://10.0.0.5:8188"},
        )
        assert status == 201, backend
        assert backend["app_id"] == "txt2img"
        assert backend["name"] == "backend1"
        assert backend["weight"] == 1
        assert backend["status"] == "active"

        status, listed = _call("GET", f"{api}/txt2img/backends", token=token)
        assert (status, [item["id"] for item in listed]) == (200, [backend["id"]])

        status, selection = _call("GET", f"{api}/txt2img/select", token=token)
        assert status == 200, selection
        assert [item["id"] for item in selection["backends"]] == [backend["id"]]

        status, error = _call(
            "POST", f"{api}/txt2img/backends", body={"name": "backend2", "host": "h2"}
        )
        assert status == 401, error
        assert error["code"] == "not_authenticated"
        status, listed = _call("GET", f"{api}/txt2img/backends", token=token)
        assert [item["name"] for item in listed] == ["backend1"], "the 401 changed data"

        status, _ = _call("GET", f"http://127.0.0.1:{port}/v1/txt2img/backends", token=token)
        assert status == 404, "the routes answer outside the prefix the site chose"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
