"""Benchmark: `GET /v1/{app}/select` (5 backends, round robin) under load, next to the same
server answering `GET /healthz` (a bare Django JSON view: the framework's floor), at 1, 8,
64 and 256 open connections, on SQLite and PostgreSQL, with one and several worker
processes; plus listing an app with 1,000 backends and 500 sequential adds.

Starts what it needs (a fresh database, migrations, a staff token, uvicorn as `scripts/serve`
runs it) and drives it with `wrk`. Writes `bench/results/select_load.md` and `.json`.

Run from the repository root: ``.venv/bin/python bench/select_load.py`` (about 8 minutes);
``--quick`` for a two-minute subset; ``--help`` for the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, BenchSite, machine_line, wait_idle, wrk

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
APP = "bench"
LIST_APP = "list1000"
ADDS_APP = "adds"

# Targets from issue 5.
TARGET_RPS = 1400  # at 8 and 64 clients
TARGET_RATIO = 0.60  # select / floor
TARGET_P99_MS = 100.0  # at 64 clients


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dbs", default="sqlite,postgres", help="sqlite and/or postgres")
    parser.add_argument("--workers", default="1,2,3", help="worker processes per run")
    parser.add_argument("--clients", default="1,8,64,256", help="open connections")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measured cell")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="8 and 64 clients, 1 and 2 workers, 3 s per cell",
    )
    parser.add_argument("--no-list", action="store_true", help="skip the 1,000-backend list")
    parser.add_argument("--no-adds", action="store_true", help="skip the 500 sequential adds")
    parser.add_argument("--adds", type=int, default=500)
    parser.add_argument("--list-size", type=int, default=1000)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the servers (e.g. HTTP_THREADS=4, CONN_MAX_AGE=0)",
    )
    parser.add_argument(
        "--asgi",
        default="comfyone_project.asgi:application",
        help="the application uvicorn serves (for experiments that wrap the project's)",
    )
    parser.add_argument("--app-dir", default=None, help="uvicorn --app-dir for --asgi")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "select_load.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.workers, args.seconds = "8,64", "1,2", 3.0
    args.db_list = [d.strip() for d in args.dbs.split(",") if d.strip()]
    args.worker_list = _ints(args.workers)
    args.client_list = _ints(args.clients)
    args.extra_env = dict(item.split("=", 1) for item in args.env)
    return args


def register_rotation(site: BenchSite, url: str) -> None:
    session = site.session()
    for i in range(5):
        response = session.post(
            f"{url}/v1/{APP}/backends",
            json={"name": f"b{i}", "host": f"http://bench-{i}:8188"},
            timeout=10,
        )
        response.raise_for_status()
    session.put(f"{url}/v1/{APP}/policy", json={"policy": "round_robin"}, timeout=10)
    check = session.get(f"{url}/v1/{APP}/select", timeout=10)
    check.raise_for_status()
    assert check.json()["policy"] == "round_robin", check.text


def bulk_register(site: BenchSite, app_id: str, count: int) -> None:
    code = (
        "from scheduler.models import Backend; "
        f"Backend.objects.bulk_create([Backend(app_id={app_id!r}, name=f'n{{i}}', "
        f"host=f'http://{app_id}-{{i}}:8188') for i in range({count})], batch_size=500)"
    )
    site.manage("shell", "-c", code)


def measure_adds(site: BenchSite, url: str, count: int) -> dict:
    """`count` sequential POSTs over one keep-alive connection (the client's own cost, about
    0.3 ms per call with requests, is included)."""
    session = site.session()
    started = time.perf_counter()
    for i in range(count):
        response = session.post(
            f"{url}/v1/{ADDS_APP}/backends",
            json={"name": f"a{i}", "host": f"http://adds-{i}:8188"},
            timeout=30,
        )
        if response.status_code != 201:
            raise RuntimeError(f"add {i}: {response.status_code} {response.text}")
    seconds = time.perf_counter() - started
    return {"adds": count, "seconds": round(seconds, 3), "adds_per_s": round(count / seconds, 1)}


def run_db(db: str, args: argparse.Namespace, results: dict) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{db}-"))
    # No per-request log line: settings.py does not read REQUEST_LOG_LEVEL (yet), so
    # LOG_LEVEL=WARNING is what silences it today. `--env LOG_LEVEL=INFO` measures with it.
    env = {
        "LOG_LEVEL": "WARNING",
        "REQUEST_LOG_LEVEL": "WARNING",
        "COMFYONE_RELAY": "off",
        **args.extra_env,
    }
    site = BenchSite(
        tmp, postgres_url=args.postgres_url if db == "postgres" else None, extra_env=env
    )
    try:
        site.setup()
        registered = False
        for workers in args.worker_list:
            url = site.start_workers(workers, asgi=args.asgi, app_dir=args.app_dir)
            print(f"== {db}, {workers} worker(s) at {url}", flush=True)
            if not registered:
                register_rotation(site, url)
                registered = True
            select_url, floor_url = f"{url}/v1/{APP}/select", f"{url}/healthz"
            # Warm up: every worker thread opens its database connection, imports settle.
            warm = max(args.client_list)
            wrk(select_url, connections=warm, seconds=1, headers=site.headers)
            wrk(floor_url, connections=warm, seconds=1)
            drained = wait_idle(url)
            for clients in args.client_list:
                # Back to back, so both see the same neighbours on this shared machine; each
                # starts once the server has finished what the run before left queued.
                sel = wrk(
                    select_url, connections=clients, seconds=args.seconds, headers=site.headers
                )
                sel_drain = wait_idle(url)
                floor = wrk(floor_url, connections=clients, seconds=args.seconds)
                drained = wait_idle(url)
                row = {
                    "db": db,
                    "workers": workers,
                    "clients": clients,
                    "select": sel.as_dict(),
                    "floor": floor.as_dict(),
                    "ratio": round(sel.rps / floor.rps, 3) if floor.rps else None,
                    # Seconds the server kept working after wrk stopped: requests queued
                    # beyond what it could answer (wrk does not count them).
                    "select_backlog_s": round(sel_drain, 2),
                    "floor_backlog_s": round(drained, 2),
                }
                results["select"].append(row)
                print(format_row(row), flush=True)
            if workers == args.worker_list[0]:
                extras(db, site, url, args, results)
            site.stop_servers()
    finally:
        site.close()


def extras(db: str, site: BenchSite, url: str, args: argparse.Namespace, results: dict) -> None:
    if not args.no_adds:
        adds = measure_adds(site, url, args.adds)
        results["adds"].append({"db": db, **adds})
        print(f"   {args.adds} adds: {adds['seconds']} s, {adds['adds_per_s']}/s", flush=True)
    if not args.no_list:
        bulk_register(site, LIST_APP, args.list_size)
        list_url = f"{url}/v1/{LIST_APP}/backends"
        body = requests.get(list_url, headers=site.headers, timeout=30).json()
        assert len(body) == args.list_size, len(body)
        result = wrk(list_url, connections=8, seconds=args.seconds, headers=site.headers)
        results["list"].append({"db": db, "backends": args.list_size, **result.as_dict()})
        print(
            f"   list {args.list_size}: {result.rps:,.0f}/s p50 {result.p50_ms:.1f} ms "
            f"p99 {result.p99_ms:.1f} ms errors {result.errors}",
            flush=True,
        )


def _cell(r: dict) -> str:
    return f"{r['rps']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']}"


def format_row(row: dict) -> str:
    return (
        f"| {row['db']} | {row['workers']} | {row['clients']} | {_cell(row['select'])} | "
        f"{_cell(row['floor'])} | {row['ratio']:.0%} | {row['select']['max_ms']:,.0f} | "
        f"{row['select_backlog_s']:.1f} |"
    )


def targets(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        sel = row["select"]
        where = f"{row['db']}, {row['workers']} worker(s), {row['clients']} clients"
        misses = []
        if sel["errors"] or row["floor"]["errors"]:
            misses.append(f"errors {sel['errors']} (floor {row['floor']['errors']})")
        if row["clients"] in (8, 64) and sel["rps"] < TARGET_RPS:
            misses.append(f"{sel['rps']:,.0f}/s < {TARGET_RPS:,}/s")
        if row["ratio"] is not None and row["ratio"] < TARGET_RATIO:
            misses.append(f"{row['ratio']:.0%} of the floor < {TARGET_RATIO:.0%}")
        if row["clients"] == 64 and sel["p99_ms"] >= TARGET_P99_MS:
            misses.append(f"p99 {sel['p99_ms']:.0f} ms >= {TARGET_P99_MS:.0f} ms")
        if misses:
            lines.append(f"- {where}: " + "; ".join(misses))
    return lines or ["- every measured cell meets every target"]


def report(results: dict, args: argparse.Namespace) -> str:
    head = [
        "| db | workers | clients | select req/s | p50 ms | p99 ms | errors "
        "| floor req/s | p50 ms | p99 ms | errors | select/floor | select max ms "
        "| select backlog s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines = [
        "# Selection under load, next to the framework's floor",
        "",
        f"{machine_line()}. Server: uvicorn as `scripts/serve` runs it with several processes "
        "(HTTP through Django's WSGI handler on a2wsgi threads, one thread per process unless "
        "`HTTP_THREADS` says otherwise), `DEBUG=0`, `LOG_LEVEL=WARNING` (no per-request log "
        "line), relay off; load from `wrk` (2 threads) on the same 2 cores (load average "
        f"{os.getloadavg()[0]:.1f} when the run started). "
        f"{args.seconds:g} s per cell; select and floor measured back to back at each "
        "concurrency. `select` is `GET /v1/bench/select` with a token (5 backends, round "
        "robin); `floor` is `GET /healthz` on the same server (no auth, no database). Errors "
        "are non-2xx responses plus socket errors (a request over 5 s is a timeout error). "
        "*Backlog* is how long the server kept answering after wrk stopped (requests it had "
        "accepted but not answered; wrk never sees them): a stall indicator next to p99 and max.",
        "",
        f"Server environment beyond the defaults: `{args.extra_env or {}}`; application "
        f"`{args.asgi}`.",
        "",
        *head,
        *(format_row(row) for row in results["select"]),
        "",
        "Targets (issue 5): zero errors at every concurrency; >= 1,400 selections/s at 8 and 64 "
        "clients; selection >= 60 % of the floor; p99 < 100 ms at 64 clients. Misses:",
        "",
        *targets(results["select"]),
        "",
    ]
    if results["list"]:
        lines += [
            "## Listing an app with 1,000 backends (`GET /v1/list1000/backends`, 8 connections)",
            "",
            "| db | backends | req/s | p50 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|---:|",
            *(
                f"| {r['db']} | {r['backends']} | {r['rps']:,.0f} | {r['p50_ms']:.1f} | "
                f"{r['p99_ms']:.1f} | {r['errors']} |"
                for r in results["list"]
            ),
            "",
        ]
    if results["adds"]:
        lines += [
            "## Sequential adds (`POST /v1/adds/backends`, one keep-alive connection)",
            "",
            "| db | adds | seconds | adds/s |",
            "|---|---:|---:|---:|",
            *(
                f"| {r['db']} | {r['adds']} | {r['seconds']:.2f} | {r['adds_per_s']:,.0f} |"
                for r in results["adds"]
            ),
            "",
        ]
    command = " ".join(filter(None, [".venv/bin/python bench/select_load.py", args.argv]))
    lines.append(f"Reproduce: `{command}`.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = shlex.join(sys.argv[1:] if argv is None else argv)
    results: dict = {
        "machine": machine_line(),
        "args": args.argv,
        "select": [],
        "list": [],
        "adds": [],
    }
    print(
        "| db | workers | clients | select req/s | p50 | p99 | err | floor req/s | p50 | p99 | "
        "err | select/floor | max | backlog s |",
        flush=True,
    )
    for db in args.db_list:
        run_db(db, args, results)
    text = report(results, args)
    print()
    print(text)
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
