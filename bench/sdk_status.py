"""Benchmark: 1,000 sequential task-status calls, the SDK (one keep-alive session) against a
plain ``requests.get`` loop with a new connection per call; writes the table to
``bench/results/sdk_status.md``.

Run: ``.venv/bin/python bench/sdk_status.py [--calls N]`` from the repository root.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

from comfyone_sdk import ComfyOne  # noqa: E402

KEY = "bench-key"
GRAPH = {"1": {"class_type": "SaveImage", "inputs": {}}}
TIMEOUT = (5.0, 30.0)


def bench_sdk(client: ComfyOne, task_id: str, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        client.prompts.status(task_id)
    return time.perf_counter() - started


def bench_plain(base_url: str, task_id: str, calls: int) -> float:
    url = f"{base_url}/v1/prompts/{task_id}/status"
    headers = {"Authorization": f"Bearer {KEY}", "Connection": "close"}
    started = time.perf_counter()
    for _ in range(calls):
        response = requests.get(url, headers=headers, timeout=TIMEOUT)
        response.raise_for_status()
        response.json()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sdk_status.md")
    args = parser.parse_args()

    # The server runs in its own process so that it does not share the client's GIL.
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.comfyone_server",
            "--api-key",
            KEY,
            "--until-stdin-closes",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        base_url = server.stdout.readline().strip()
        client = ComfyOne(KEY, base_url=base_url, timeout=TIMEOUT)
        client.backends.register("bench-1")
        workflow_id = client.workflows.create(name="bench", workflow=GRAPH, outputs=["1"]).id
        task_id = client.prompts.submit(workflow_id)
        # Warm up both paths (imports, first connection) before timing.
        bench_sdk(client, task_id, 20)
        bench_plain(base_url, task_id, 20)
        sdk_seconds = bench_sdk(client, task_id, args.calls)
        plain_seconds = bench_plain(base_url, task_id, args.calls)
        client.close()
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(10)

    sdk_rate = args.calls / sdk_seconds
    plain_rate = args.calls / plain_seconds
    ratio = sdk_rate / plain_rate
    rows = [
        ("SDK `client.prompts.status()` (one keep-alive session)", sdk_seconds, sdk_rate),
        ("plain `requests.get` (new connection per call)", plain_seconds, plain_rate),
    ]
    table = [
        "| client | calls | seconds | calls/s |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {args.calls} | {sec:.3f} | {rate:,.0f} |" for name, sec, rate in rows),
    ]
    report = "\n".join(
        [
            "# SDK status calls against the loopback ComfyOne server",
            "",
            f"Sequential `GET /v1/prompts/{{id}}/status`, both in one run "
            f"(Python {platform.python_version()}, {platform.machine()}, "
            f"{time.strftime('%Y-%m-%d')}; the server is `tests/support/comfyone_server.py` "
            "in a separate process).",
            "",
            *table,
            "",
            f"SDK / plain: **{ratio:.2f}x**. The SDK reuses one TCP connection through its "
            "`requests.Session`; the plain loop pays a TCP handshake per call.",
            "",
            "Reproduce: `.venv/bin/python bench/sdk_status.py`.",
            "",
        ]
    )
    print("\n".join(table))
    print(f"SDK {sdk_rate:,.0f} calls/s, plain {plain_rate:,.0f} calls/s, ratio {ratio:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
