"""Benchmark: one task watched by many WebSocket clients; how fast do ComfyOne's events reach
every one of them?

For each configuration (``memory``: one uvicorn process, in-memory channel layer, the relay
embedded in it; ``redis``: one uvicorn process, Redis channel layer, the relay as
``manage.py relay`` in its own process) and each run (``paced``: the fake ComfyOne emits at
``--rate`` events/s; ``flood``: as fast as it can), the script

1. submits one task through ``POST /v1/{app}/tasks`` while the fake holds it (it stays pending),
2. opens ``--clients`` WebSockets on ``/ws/tasks/<id>/`` (aiohttp, one asyncio loop) and waits
   for every snapshot,
3. makes the fake emit ``--events`` ``pendding`` frames with ``current`` counting down from
   ``--events`` to 1 (each one changes ``queue_position``, so each must become one frame), and
4. records, per event, the time from the fake sending it to the LAST client receiving the frame
   whose ``queue_position`` matches, and checks that every client got every event.

The fake ComfyOne runs in its own process (this file with ``--fake-worker``) so that its
emitting does not share a GIL with the 200 client sockets: in-process, each would delay the
other's timestamps. All processes share the machine's cores, so the clients' receive cost is
part of the figure; the client process's CPU time is reported next to the servers'.

Run from the repository root (Redis at ``--redis-url`` for the second configuration)::

    .venv/bin/python bench/ws_fanout.py [--clients 200] [--events 500] [--rate 50]
        [--configs memory,redis] [--runs paced,flood]

Writes ``bench/results/ws_fanout.md`` and ``bench/results/ws_fanout.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

KEY = "bench-key"
APP = "bench"
WORKFLOW = {
    "name": "bench",
    "inputs": [{"id": "5", "type": "number", "name": "width"}],
    "outputs": ["9"],
    "workflow": {
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["5", 0]}},
    },
}
DEFAULT_ASGI = "comfyone_project.asgi:application"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the fake ComfyOne, in its own process ------------------------------------------------------


def fake_worker() -> None:
    """Serve a FakeComfyOne; obey JSON commands on stdin, answer JSON lines on stdout."""
    from tests.support.comfyone_server import FakeComfyOne

    # queue_frames=0: a held task sends nothing by itself; every frame is one of ours.
    with FakeComfyOne(api_key=KEY, queue_frames=0, step_delay=0.001) as fake:
        fake.hold()
        print(json.dumps({"base_url": fake.base_url}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            reply: dict[str, Any] = {}
            if command["cmd"] == "sockets":
                reply = {"count": sum(1 for ws in list(fake._sockets) if not ws.closed)}
            elif command["cmd"] == "emit":
                task_id, events, rate = command["task_id"], command["events"], command["rate"]
                sent: list[float] = []
                start = time.time() + 0.05
                for i in range(events):
                    if rate:
                        delay = start + i / rate - time.time()
                        if delay > 0:
                            time.sleep(delay)
                    sent.append(time.time())
                    # Each frame changes the position; `bench_index` is for anyone reading
                    # the relay's side (the clients see only `queue_position`).
                    fake.emit(task_id, "pendding", {"current": events - i, "bench_index": i})
                reply = {"sent": sent}
            print(json.dumps(reply), flush=True)


class FakeProcess:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--fake-worker"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base_url = self._read()["base_url"]
        self.workflow_id = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the fake ComfyOne process exited")
        return json.loads(line)

    def call(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._read()

    def wait_for_sockets(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.call(cmd="sockets")["count"] >= count:
                return
            time.sleep(0.1)
        raise RuntimeError("the relay never connected to the fake ComfyOne")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


# --- measuring ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its threads included), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def watch(
    session: Any,
    url: str,
    headers: dict[str, str],
    frames: list[tuple[float, str]],
    ready: asyncio.Event,
    counter: list[int],
    total: int,
) -> Any:
    import aiohttp

    for attempt in range(5):
        try:
            ws = await session.ws_connect(url, headers=headers, max_msg_size=0, heartbeat=None)
            break
        except (TimeoutError, aiohttp.ClientError):
            if attempt == 4:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
    first = await ws.receive()
    snapshot = json.loads(first.data)
    assert snapshot["type"] == "snapshot", snapshot
    counter[0] += 1
    if counter[0] == total:
        ready.set()

    async def read() -> None:
        # Keep the receive path minimal: time and raw text; parsed after the run.
        append = frames.append
        now = time.time
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                append((now(), message.data))

    return ws, asyncio.ensure_future(read())


async def run_clients(
    ws_url: str,
    headers: dict[str, str],
    clients: int,
    emit: Any,
    expected: int,
    idle_timeout: float,
) -> tuple[list[list[tuple[float, str]]], dict[str, Any], float]:
    """Connect every client, call `emit()` in a thread once all have their snapshot, and
    return every client's frames, emit's answer and the connect time."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    frames: list[list[tuple[float, str]]] = [[] for _ in range(clients)]
    ready, counter = asyncio.Event(), [0]
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        gate = asyncio.Semaphore(50)  # no handshake storm beyond the server's listen backlog

        async def one(i: int) -> Any:
            async with gate:
                return await watch(session, ws_url, headers, frames[i], ready, counter, clients)

        sockets = await asyncio.gather(*(one(i) for i in range(clients)))
        await asyncio.wait_for(ready.wait(), 60)
        connect_seconds = time.perf_counter() - started
        emitted = asyncio.ensure_future(asyncio.to_thread(emit))
        # Done when every client has every frame, or nothing arrived for `idle_timeout`.
        last_total, last_change = -1, time.monotonic()
        while True:
            await asyncio.sleep(0.05)
            total = sum(len(f) for f in frames)
            if total != last_total:
                last_total, last_change = total, time.monotonic()
            if emitted.done() and total >= expected * clients:
                break
            if emitted.done() and time.monotonic() - last_change > idle_timeout:
                break
        answer = await emitted
        await asyncio.sleep(0.2)  # late duplicates, if any, would show up here
        for ws, reader in sockets:
            await ws.close()
            reader.cancel()
    return frames, answer, connect_seconds


def analyse(
    frames: list[list[tuple[float, str]]], sent: list[float], task_pk: str
) -> dict[str, Any]:
    events = len(sent)
    received: list[dict[int, float]] = []
    missing = duplicates = out_of_order = foreign = 0
    for client in frames:
        seen: dict[int, float] = {}
        last_index = -1
        for at, raw in client:
            frame = json.loads(raw)
            task = frame.get("task") or {}
            position = task.get("queue_position")
            if frame.get("type") != "task" or task.get("id") != task_pk or position is None:
                foreign += 1
                continue
            index = events - position
            if not 0 <= index < events:
                foreign += 1
                continue
            if index in seen:
                duplicates += 1
                continue
            if index < last_index:
                out_of_order += 1
            last_index = index
            seen[index] = at
        missing += events - len(seen)
        received.append(seen)
    latencies: list[float] = []
    complete_at: list[float] = []
    incomplete_events = 0
    for i, at in enumerate(sent):
        times = [seen.get(i) for seen in received]
        if any(t is None for t in times):
            incomplete_events += 1
            continue
        last = max(times)  # type: ignore[type-var]
        latencies.append(last - at)
        complete_at.append(last)
    first_clients = [
        min(seen[i] for seen in received if i in seen) - at
        for i, at in enumerate(sent)
        if any(i in seen for seen in received)
    ]
    span = (max(complete_at) - sent[0]) if complete_at else float("nan")
    arrivals = [at for seen in received for at in seen.values()]
    frames_span = (max(arrivals) - sent[0]) if arrivals else float("nan")
    return {
        "events": events,
        "events_complete": len(latencies),
        "events_incomplete": incomplete_events,
        "frames_missing": missing,
        "frames_duplicate": duplicates,
        "frames_out_of_order": out_of_order,
        "frames_other": foreign,
        "latency_last_client_ms": {
            "median": statistics.median(latencies) * 1000 if latencies else None,
            "p99": percentile(latencies, 99) * 1000 if latencies else None,
            "max": max(latencies) * 1000 if latencies else None,
        },
        "latency_first_client_ms": {
            "median": statistics.median(first_clients) * 1000 if first_clients else None,
        },
        "emit_seconds": sent[-1] - sent[0],
        "offered_events_per_s": (events - 1) / (sent[-1] - sent[0]) if events > 1 else None,
        "delivered_seconds": span,
        "sustained_events_per_s": len(latencies) / span if complete_at else None,
        "frames_received": len(arrivals),
        "frames_per_s": len(arrivals) / frames_span if arrivals else None,
        "latencies_ms": [round(x * 1000, 3) for x in latencies],
    }


# --- one configuration --------------------------------------------------------------------------


def run_configuration(name: str, args: argparse.Namespace, fake: FakeProcess) -> list[dict]:
    import requests

    from tests.livesite import LiveSite

    redis_url = args.redis_url if name == "redis" else None
    env = {
        "COMFYONE_API_KEY": KEY,
        "COMFYONE_BASE_URL": fake.base_url,
        "COMFYONE_RELAY": "external" if redis_url else "embedded",
        "LOG_LEVEL": "WARNING",
    }
    results = []
    with tempfile.TemporaryDirectory(prefix=f"ws-fanout-{name}-") as tmp:
        relay: subprocess.Popen | None = None
        relay_log = None
        sockets_before = fake.call(cmd="sockets")["count"]
        with LiveSite(Path(tmp), redis_url=redis_url, extra_env=env) as site:
            command = None
            if args.asgi != DEFAULT_ASGI or args.app_dir:
                command = [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    args.asgi,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "{port}",
                    "--lifespan",
                    "on",
                    "--no-access-log",
                    "--app-dir",
                    str(args.app_dir or ROOT),
                ]
            (url,) = site.start(1, command=command)
            server_pid = site.processes[0].pid
            if redis_url:
                relay_log = open(Path(tmp) / "relay.log", "wb")  # noqa: SIM115
                relay = subprocess.Popen(
                    [sys.executable, str(ROOT / "manage.py"), "relay"],
                    env=site.env,
                    cwd=tmp,
                    stdout=relay_log,
                    stderr=subprocess.STDOUT,
                )
            try:
                try:
                    fake.wait_for_sockets(sockets_before + 1)
                except RuntimeError:
                    for log in [*site.logs, Path(tmp) / "relay.log"]:
                        if log.exists():
                            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
                    raise
                http = site.session()
                response = http.post(
                    f"{url}/v1/{APP}/backends",
                    json={"name": "inst-1", "host": "inst-1"},
                    timeout=10,
                )
                assert response.status_code in (200, 201), response.text
                for run in args.runs:
                    response = http.post(
                        f"{url}/v1/{APP}/tasks",
                        json={
                            "workflow_id": fake.workflow_id,
                            "inputs": [{"id": "5", "params": {"width": 640}}],
                        },
                        timeout=10,
                    )
                    assert response.status_code == 201, response.text
                    task = response.json()
                    rate = args.rate if run == "paced" else 0
                    ws_url = url.replace("http://", "ws://") + f"/ws/tasks/{task['task_id']}/"
                    pids = {"server": server_pid, "fake": fake.pid, "clients": os.getpid()}
                    if relay is not None:
                        pids["relay"] = relay.pid
                    cpu_before = {k: cpu_seconds(p) for k, p in pids.items()}

                    def emit(task_id: str = task["task_id"], rate: float = rate) -> dict:
                        return fake.call(cmd="emit", task_id=task_id, events=args.events, rate=rate)

                    frames, answer, connect_seconds = asyncio.run(
                        run_clients(
                            ws_url, site.headers, args.clients, emit, args.events, args.idle_timeout
                        )
                    )
                    cpu = {k: round(cpu_seconds(p) - cpu_before[k], 2) for k, p in pids.items()}
                    result = analyse(frames, answer["sent"], task["id"])
                    final = requests.get(
                        f"{url}/v1/tasks/{task['task_id']}", headers=site.headers, timeout=10
                    ).json()
                    result.update(
                        configuration=name,
                        run=run,
                        clients=args.clients,
                        rate=rate or "flood",
                        connect_seconds=round(connect_seconds, 2),
                        cpu_seconds=cpu,
                        final_queue_position=final.get("queue_position"),
                    )
                    results.append(result)
                    print(summary_line(result), flush=True)
            finally:
                if relay is not None:
                    relay.terminate()
                    try:
                        relay.wait(15)
                    except subprocess.TimeoutExpired:
                        relay.kill()
                        relay.wait(5)
                if relay_log is not None:
                    relay_log.close()
    return results


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_line(r: dict[str, Any]) -> str:
    lat = r["latency_last_client_ms"]
    rate = fmt(r["sustained_events_per_s"])
    return (
        f"{r['configuration']:6} {r['run']:5}: median {fmt(lat['median'])} ms, "
        f"p99 {fmt(lat['p99'])} ms, {rate} events/s, missing {r['frames_missing']}"
    )


def markdown(results: list[dict[str, Any]], args: argparse.Namespace, note: str) -> str:
    lines = [
        "# WebSocket fan-out: one task, many watchers",
        "",
        f"{args.clients} clients on `/ws/tasks/<id>/`, {args.events} `pendding` events per run,"
        f" each one a change of `queue_position`. Latency: the fake ComfyOne sending the event"
        f" to the LAST client receiving its frame (`time.time()`, one machine). Sustained: events"
        f" delivered to all clients / (last delivery - first send); frames/s: every frame any"
        " client got / (last frame - first send).",
        "",
        "| layer / relay | run | offered ev/s | median ms | p99 ms | max ms | sustained ev/s"
        " | frames/s | missing frames | incomplete events"
        " | CPU s server / relay / clients / fake |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lat = r["latency_last_client_ms"]
        cpu = r["cpu_seconds"]
        config = (
            "in-memory, embedded relay"
            if r["configuration"] == "memory"
            else "Redis, `manage.py relay`"
        )
        sustained = r["sustained_events_per_s"]
        lines.append(
            f"| {config} | {r['run']} | {fmt(r['offered_events_per_s'])} | {fmt(lat['median'])}"
            f" | {fmt(lat['p99'])} | {fmt(lat['max'])} | {fmt(sustained)}"
            f" | {fmt(r['frames_per_s'], 0)}"
            f" | {r['frames_missing']} of {r['events'] * r['clients']}"
            f" | {r['events_incomplete']}"
            f" | {cpu.get('server')} / {cpu.get('relay', '(in server)')} / {cpu.get('clients')}"
            f" / {cpu.get('fake')} |"
        )
    lines += [
        "",
        f"Machine: {platform.python_implementation()} {platform.python_version()},"
        f" {os.cpu_count()} cores shared with other work (figures are noisy). Command:"
        f" `.venv/bin/python bench/ws_fanout.py --clients {args.clients} --events {args.events}"
        f" --rate {args.rate}`.",
    ]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="events/s of the paced run")
    parser.add_argument("--configs", default="memory,redis")
    parser.add_argument("--runs", default="paced,flood")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=10.0,
        help="give up waiting for missing frames after this many quiet seconds",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ws_fanout")
    parser.add_argument(
        "--asgi", default=DEFAULT_ASGI, help="the server's ASGI app (to A/B a patched consumer)"
    )
    parser.add_argument(
        "--app-dir",
        type=Path,
        default=None,
        help="directory put first on the server's sys.path (with --asgi)",
    )
    parser.add_argument("--note", default="", help="a paragraph appended to the Markdown")
    parser.add_argument("--fake-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fake_worker:
        fake_worker()
        return 0
    args.runs = [r for r in args.runs.split(",") if r]
    configs = [c for c in args.configs.split(",") if c]

    from comfyone_sdk import ComfyOne

    fake = FakeProcess()
    results: list[dict[str, Any]] = []
    try:
        with ComfyOne(KEY, base_url=fake.base_url) as client:
            client.backends.register("inst-1")
            fake.workflow_id = client.workflows.create(**WORKFLOW).id
        for name in configs:
            results += run_configuration(name, args, fake)
    finally:
        fake.close()
    text = markdown(results, args, args.note)
    print()
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {
                "clients": args.clients,
                "events": args.events,
                "rate": args.rate,
                "python": platform.python_version(),
                "cores": os.cpu_count(),
                "results": results,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
