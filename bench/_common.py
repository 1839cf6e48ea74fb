"""Helpers shared by the server benchmarks: a `wrk` runner that returns numbers (not text),
and server processes started, restarted and stopped over one fresh database."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script from a checkout

from tests.livesite import LiveSite  # noqa: E402

WRK = os.environ.get("WRK", "/usr/bin/wrk")

# wrk's `done` hook prints one JSON line; latencies are in microseconds. `errors.status`
# counts responses with a status above 399, the other error kinds are socket errors.
WRK_REPORT_LUA = """
done = function(summary, latency, requests)
  io.write(string.format(
    '\\nWRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,'
    .. '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
    .. '"max_us":%d,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
"""


@dataclass
class LoadResult:
    url: str
    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    status_errors: int
    socket_errors: int
    timeouts: int

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors

    def as_dict(self) -> dict:
        return {**asdict(self), "errors": self.errors}


_lua_path: Path | None = None


def _lua() -> Path:
    global _lua_path
    if _lua_path is None:
        handle = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115
        handle.write(WRK_REPORT_LUA)
        handle.close()
        _lua_path = Path(handle.name)
    return _lua_path


def wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> LoadResult:
    """Run wrk against `url` with `connections` open connections for `seconds`.

    A request that takes longer than `timeout` counts as a socket error (a stall), and wrk
    leaves it out of the latency percentiles, so read p99 together with the errors.
    """
    threads = max(1, min(2, connections))
    argv = [
        WRK,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout:g}s",
        "-s",
        str(_lua()),
    ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True)
    line = next(
        (ln for ln in out.stdout.splitlines() if ln.startswith("WRK_JSON ")),
        None,
    )
    if line is None:
        raise RuntimeError(f"wrk printed no report:\n{out.stdout}\n{out.stderr}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    duration = raw["duration_us"] / 1e6
    return LoadResult(
        url=url,
        connections=connections,
        seconds=round(duration, 3),
        requests=raw["requests"],
        rps=round(raw["requests"] / duration, 1) if duration else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        status_errors=raw["status"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        timeouts=raw["timeout"],
    )


def wait_idle(url: str, *, quiet_ms: float = 25.0, timeout: float = 120.0) -> float:
    """Wait until the server has worked off what a finished load run left queued.

    wrk closes its connections when its time is up, but requests already handed to the
    server's thread pool still run; the next run must not start behind them (its first
    requests would wait seconds, and a floor run would be measured against a backlog of
    selections). The probe queues behind the backlog, so three quick answers in a row mean
    the queue is empty. Returns the seconds waited."""
    started = time.monotonic()
    quick = 0
    with requests.Session() as session:
        while quick < 3:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{url} still busy after {timeout:g} s")
            sent = time.monotonic()
            session.get(f"{url}/healthz", timeout=timeout)
            quick = quick + 1 if (time.monotonic() - sent) * 1000 < quiet_ms else 0
    return time.monotonic() - started


class BenchSite(LiveSite):
    """A `LiveSite` whose server processes can be replaced (other worker counts, other
    environment) while its database lives on; `close()` drops the database."""

    def start_workers(
        self,
        workers: int,
        *,
        asgi: str = "comfyone_project.asgi:application",
        app_dir: str | None = None,
    ) -> str:
        """Start one uvicorn on one port with `workers` worker processes (as `scripts/serve`
        does with WEB_CONCURRENCY); return its URL. `asgi` and `app_dir` serve another
        application (an experiment that wraps the project's) the same way."""
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            asgi,
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--lifespan",
            "on",
            "--no-access-log",
        ]
        if app_dir:
            command += ["--app-dir", app_dir]
        if workers > 1:
            command += ["--workers", str(workers)]
        (url,) = self.start(1, command=command)
        if workers > 1:
            # The supervisor answers as soon as one worker is up: wait until each has served.
            self._wait_all_workers(url, workers)
        return url

    def _wait_all_workers(self, url: str, workers: int) -> None:
        # The supervisor's port answers as soon as one worker is up; each worker logs
        # uvicorn's "Application startup complete." once it can serve.
        log = self.logs[-1]
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if log.read_text(errors="replace").count("Application startup complete") >= workers:
                return
            time.sleep(0.2)
        raise RuntimeError(f"not every worker at {url} came up:\n{log.read_text()[-2000:]}")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.tmp_path, ignore_errors=True)


def machine_line() -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return (
        f"Python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}, "
        f"commit {commit or '?'}, {time.strftime('%Y-%m-%d %H:%M')}"
    )
