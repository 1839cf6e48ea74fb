"""Real server processes for tests that cross process boundaries.

`LiveSite` makes a fresh database (a SQLite file, or a new PostgreSQL database that it drops
afterwards), migrates it, creates a staff user with a token, and starts any number of server
processes on free loopback ports, all sharing that database.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import requests

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 40.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveSite:
    def __init__(
        self,
        tmp_path: Path,
        *,
        postgres_url: str | None = None,
        redis_url: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.tmp_path = tmp_path
        self.postgres_url = postgres_url
        self.redis_url = redis_url
        self.extra_env = extra_env or {}
        self.db_name: str | None = None
        self.processes: list[subprocess.Popen] = []
        self.urls: list[str] = []
        self.logs: list[Path] = []
        self.token = ""

    # --- database ---------------------------------------------------------------------------
    def _database_url(self) -> str:
        if not self.postgres_url:
            return f"sqlite:///{self.tmp_path / 'live.sqlite3'}"
        parsed = urlparse(self.postgres_url)
        return urlunparse(parsed._replace(path=f"/{self.db_name}"))

    def _admin_sql(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.postgres_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    @property
    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "DEBUG": "0",
            "SECRET_KEY": "live-site-test-key",
            "DATABASE_URL": self._database_url(),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "WARNING",
            "REQUEST_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
            "COMFYONE_RELAY": "off",
            **self.extra_env,
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        else:
            env.pop("REDIS_URL", None)
        return env

    def manage(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=self.env,
            cwd=self.tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def setup(self) -> None:
        if self.postgres_url:
            self.db_name = f"comfyone_live_{uuid.uuid4().hex[:12]}"
            self._admin_sql(f'CREATE DATABASE "{self.db_name}"')
        self.manage("migrate", "--noinput", "-v", "0")
        out = self.manage("scheduler_admin", "--username", "live-admin")
        self.token = next(line.split()[1] for line in out.splitlines() if line.startswith("Token:"))

    # --- servers ----------------------------------------------------------------------------
    def start(self, count: int = 1, *, command: list[str] | None = None) -> list[str]:
        """Start `count` server processes as `scripts/serve` runs them (uvicorn, one worker
        each), or `command` with {port} filled in."""
        started = []
        for _ in range(count):
            port = free_port()
            argv = [
                a.replace("{port}", str(port))
                for a in (
                    command
                    or [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "comfyone_project.asgi:application",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        "{port}",
                        "--lifespan",
                        "on",
                        "--no-access-log",
                    ]
                )
            ]
            log = open(self.tmp_path / f"server-{port}.log", "wb")  # noqa: SIM115
            process = subprocess.Popen(
                argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
            self.processes.append(process)
            self.logs.append(self.tmp_path / f"server-{port}.log")
            url = f"http://127.0.0.1:{port}"
            self.urls.append(url)
            started.append(url)
        for url in started:
            self._wait_ready(url)
        return started

    def _wait_ready(self, url: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/v1/policies", headers=self.headers, timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in self.logs)
        raise RuntimeError(f"server at {url} did not become ready:\n{logs}")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}

    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers.update(self.headers)
        return session

    def stop_servers(self) -> None:
        """Stop every server process; the database stays."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.processes.clear()
        self.urls.clear()

    def stop(self) -> None:
        """Stop every server process and drop a PostgreSQL database made for the site."""
        self.stop_servers()
        if self.postgres_url and self.db_name:
            self._admin_sql(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            self.db_name = None

    def __enter__(self) -> LiveSite:
        try:
            self.setup()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
