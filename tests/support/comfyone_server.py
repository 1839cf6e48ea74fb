"""A real loopback ComfyOne server (HTTP + WebSocket on one port) for tests and benchmarks.

Usage::

    with FakeComfyOne(api_key="test-key") as server:      # binds 127.0.0.1, a free port
        client = ComfyOne("test-key", base_url=server.base_url)   # ws: server.ws_url
        server.step_delay = 0.01        # seconds between the frames of a running task
        client.backends.register("inst-1")
        ...

Tasks really run: after a submit the server sends, to every socket of the account,
``pendding`` frames with a decreasing ``current`` (``queue_frames`` of them), then ``progress``
frames with an increasing ``process`` (``progress_steps``), then ``finished`` {success: true};
results are absolute URLs on this server that serve real PNG bytes (Bearer header required).

Control: ``hold()`` keeps new tasks queued until ``release()``; ``fail_next_task(node, message)``
makes the next task fail (``error`` + ``finished`` {success: false}, status ``failed`` with
``error_node``/``message``). Misbehaviour on demand: ``fail_next(prefix, status, times,
retry_after)``, ``envelope_error_next(code, msg)``, ``delay_next(seconds)``, ``drop_sockets()``,
``send_raw(frame)``. State to inspect: ``backends``, ``workflows``, ``tasks``, ``files``,
``requests`` (a log of ``(method, path, json_body)``), ``client_ports``, ``sockets_opened``,
``auth_frames``.

Envelope codes: 0 ok; 2006 "this service has no backend yet" (submit with no backend
registered); 2007 "backend <name> not found"; 2008 "backend <name> is down" (or "no backend is
up"). HTTP 401 for a wrong key (also on the WebSocket handshake), 404 for an unknown id, 400 for
an invalid body. The historic aliases ``GET /v1/prompts/{id}``, ``DELETE /v1/prompts/{id}`` and
``PUT /v1/workflows/{id}`` are accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import WSMsgType, web

__all__ = ["FakeComfyOne", "FakeTask", "png_bytes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

NO_BACKEND = 2006
BACKEND_NOT_FOUND = 2007
BACKEND_DOWN = 2008


def png_bytes(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A valid RGB PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


@dataclass
class FakeTask:
    """One submitted task; ``status`` uses the service's spelling (``pendding``, ``cancel``)."""

    id: str
    workflow_id: str | None
    graph: dict[str, Any]
    outputs: list[str]
    body: dict[str, Any]
    backend: str | None
    status: str = "pendding"
    images: list[str] = field(default_factory=list)
    cost_time: int | None = None
    error_node: str | None = None
    message: str | None = None
    failure: tuple[str, str] | None = None
    runner: asyncio.Task[None] | None = None

    def status_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status}
        if self.status == "finished":
            data["images"] = self.images
            data["cost_time"] = self.cost_time
        if self.status == "failed":
            data["error_node"] = self.error_node
            data["message"] = self.message
        return data


@dataclass
class _Rule:
    kind: str  # "status" | "envelope" | "delay"
    prefix: str
    method: str | None
    times: int
    status: int = 503
    retry_after: float | str | None = None
    code: int = 0
    msg: str = ""
    seconds: float = 0.0

    def matches(self, request: web.Request) -> bool:
        if self.times <= 0 or not request.path.startswith(self.prefix):
            return False
        return self.method is None or self.method == request.method


def _envelope(
    data: Any = None, *, code: int = 0, msg: str = "ok", status: int = 200
) -> web.Response:
    return web.json_response({"code": code, "msg": msg, "data": data}, status=status)


def _system_vars(value: Any, task_id: str, workflow_id: str) -> Any:
    if isinstance(value, str):
        return value.replace("{COMFYONE:TASK_ID}", task_id).replace(
            "{COMFYONE:WORKFLOW_ID}", workflow_id
        )
    if isinstance(value, dict):
        return {k: _system_vars(v, task_id, workflow_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_system_vars(v, task_id, workflow_id) for v in value]
    return value


class FakeComfyOne:
    """The ComfyOne API on 127.0.0.1, its event loop in a daemon thread (see module docstring)."""

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        step_delay: float = 0.01,
        queue_frames: int = 2,
        progress_steps: tuple[int, ...] = (0, 25, 50, 75, 100),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.step_delay = step_delay
        self.queue_frames = queue_frames
        self.progress_steps = progress_steps
        self.cost_time_ms = 1234
        self.host = host
        self.port = port
        self.backends: dict[str, dict[str, Any]] = {}
        self.workflows: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, FakeTask] = {}
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.auth_frames: list[dict[str, Any]] = []
        self.client_ports: list[int] = []  # source port per request: shows connection reuse
        self.sockets_opened = 0
        self._rules: list[_Rule] = []
        self._next_failure: tuple[str, str] | None = None
        self._ids = itertools.count(1)
        self._sockets: set[web.WebSocketResponse] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._release: asyncio.Event | None = None
        self._held = False
        self._lock = threading.Lock()

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/ws"

    def start(self) -> FakeComfyOne:
        started = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start_app())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fake-comfyone", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("fake ComfyOne server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown(), timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> FakeComfyOne:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, coro: Awaitable[Any], timeout: float = 5.0) -> Any:
        assert self._loop is not None, "server not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    async def _start_app(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024**2)
        r = app.router
        r.add_get("/v1/ws", self._ws)
        r.add_get("/v1/backends", self._backends_list)
        r.add_post("/v1/backends", self._backends_register)
        r.add_get("/v1/backends/{name}", self._backends_get)
        r.add_patch("/v1/backends/{name}", self._backends_state)
        r.add_delete("/v1/backends/{name}", self._backends_delete)
        r.add_get("/v1/workflows", self._workflows_list)
        r.add_post("/v1/workflows", self._workflows_create)
        r.add_get("/v1/workflows/{id}", self._workflows_get)
        r.add_patch("/v1/workflows/{id}", self._workflows_update)
        r.add_put("/v1/workflows/{id}", self._workflows_update)
        r.add_delete("/v1/workflows/{id}", self._workflows_delete)
        r.add_post("/v1/files", self._files_upload)
        r.add_post("/v1/prompts", self._prompts_submit)
        r.add_post("/v1/prompts_workflow", self._prompts_workflow)
        r.add_get("/v1/prompts/{id}/status", self._prompts_status)
        r.add_get("/v1/prompts/{id}", self._prompts_status)
        r.add_post("/v1/prompts/{id}/cancel", self._prompts_cancel)
        r.add_delete("/v1/prompts/{id}", self._prompts_cancel)
        r.add_get("/v1/results/{task}/{name}", self._result_file)
        self._release = asyncio.Event()
        if not self._held:  # hold() may be called before start()
            self._release.set()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        for task in list(self.tasks.values()):
            if task.runner is not None:
                task.runner.cancel()
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- test controls ----------------------------------------------------------------------

    def fail_next(
        self,
        path_prefix: str,
        status: int = 503,
        times: int = 1,
        retry_after: float | str | None = None,
        *,
        method: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with HTTP ``status`` (and Retry-After)."""
        with self._lock:
            self._rules.append(
                _Rule("status", path_prefix, method, times, status=status, retry_after=retry_after)
            )

    def envelope_error_next(
        self,
        code: int,
        msg: str,
        *,
        path_prefix: str = "/v1/",
        times: int = 1,
        method: str | None = None,
    ) -> None:
        """Answer the next matching requests with HTTP 200 and a non-zero envelope ``code``."""
        with self._lock:
            self._rules.append(_Rule("envelope", path_prefix, method, times, code=code, msg=msg))

    def delay_next(
        self,
        seconds: float,
        *,
        path_prefix: str = "/v1/",
        times: int = 1,
        method: str | None = None,
    ) -> None:
        """Sleep ``seconds`` before handling the next matching requests (then handle them)."""
        with self._lock:
            self._rules.append(_Rule("delay", path_prefix, method, times, seconds=seconds))

    def fail_next_task(self, node: str = "9", message: str = "CUDA out of memory") -> None:
        """Make the next submitted task fail at ``node`` with ``message``."""
        self._next_failure = (node, message)

    def hold(self) -> None:
        """Keep tasks queued (status ``pendding``) until :meth:`release`."""
        self._held = True
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.clear)

    def release(self) -> None:
        """Let held tasks run."""
        self._held = False
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    def drop_sockets(self) -> None:
        """Close every WebSocket abruptly (tasks keep running)."""

        async def drop() -> None:
            for ws in list(self._sockets):
                await ws.close(code=1011, message=b"dropped by test")
            self._sockets.clear()

        self._call(drop())

    def send_raw(self, frame: str | bytes) -> None:
        """Send ``frame`` verbatim to every connected socket (e.g. malformed JSON)."""

        async def send() -> None:
            for ws in list(self._sockets):
                if isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                else:
                    await ws.send_str(frame)

        self._call(send())

    def emit(self, task_id: str, kind: str, data: dict[str, Any]) -> None:
        """Send one well-formed event frame to every socket."""
        self._call(self._broadcast(task_id, kind, data))

    @property
    def socket_count(self) -> int:
        return len(self._sockets)

    def wait_for_sockets(self, count: int = 1, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self._sockets) >= count:
                return True
            time.sleep(0.01)
        return False

    def count(self, method: str, path: str) -> int:
        """How many logged requests had this method and exact path."""
        return sum(1 for m, p, _ in self.requests if m == method and p == path)

    # --- middleware: logging, misbehaviour, auth ---------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body: Any = None
        if request.content_type == "application/json" and request.can_read_body:
            try:
                body = json.loads(await request.read() or b"null")
            except ValueError:
                body = "<invalid json>"
        self.requests.append((request.method, request.path, body))
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.client_ports.append(peer[1])
        rule = None
        with self._lock:
            for candidate in self._rules:
                if candidate.matches(request):
                    candidate.times -= 1
                    rule = candidate
                    break
            self._rules = [r for r in self._rules if r.times > 0]
        if rule is not None and rule.kind == "delay":
            await asyncio.sleep(rule.seconds)
        elif rule is not None and rule.kind == "status":
            headers = {}
            if rule.retry_after is not None:
                headers["Retry-After"] = str(rule.retry_after)
            return web.json_response(
                {"code": rule.status, "msg": f"injected HTTP {rule.status}", "data": None},
                status=rule.status,
                headers=headers,
            )
        elif rule is not None and rule.kind == "envelope":
            return _envelope(None, code=rule.code, msg=rule.msg)
        if not self._authorized(request):
            return _envelope(None, code=401, msg="invalid API key", status=401)
        return await handler(request)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header == f"Bearer {self.api_key}":
            return True
        # Browsers cannot set headers on a WebSocket handshake: allow ?token= there only.
        return request.path == "/v1/ws" and request.query.get("token") == self.api_key

    @staticmethod
    async def _json(request: web.Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            return None

    # --- backends ---------------------------------------------------------------------------

    async def _backends_list(self, request: web.Request) -> web.Response:
        return _envelope(list(self.backends.values()))

    async def _backends_register(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        name = body.get("instance_id") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            return _envelope(None, code=400, msg="instance_id is required", status=400)
        backend = self.backends.setdefault(
            name, {"name": name, "instance_id": name, "state": "up", "created_at": time.time()}
        )
        return _envelope(backend)

    async def _backends_get(self, request: web.Request) -> web.Response:
        backend = self.backends.get(request.match_info["name"])
        if backend is None:
            return _envelope(None, code=404, msg="backend not found", status=404)
        return _envelope(backend)

    async def _backends_state(self, request: web.Request) -> web.Response:
        backend = self.backends.get(request.match_info["name"])
        if backend is None:
            return _envelope(None, code=404, msg="backend not found", status=404)
        body = await self._json(request)
        state = body.get("state") if isinstance(body, dict) else None
        if state not in ("up", "down"):
            return _envelope(None, code=400, msg="state must be up or down", status=400)
        backend["state"] = state
        return _envelope(backend)

    async def _backends_delete(self, request: web.Request) -> web.Response:
        if self.backends.pop(request.match_info["name"], None) is None:
            return _envelope(None, code=404, msg="backend not found", status=404)
        return _envelope(None)

    # --- workflows --------------------------------------------------------------------------

    @staticmethod
    def _workflow_problem(body: Any) -> str | None:
        if not isinstance(body, dict):
            return "body must be an object"
        if not isinstance(body.get("name"), str) or not body["name"]:
            return "name is required"
        graph = body.get("workflow")
        if not isinstance(graph, dict) or not graph:
            return "workflow must be a non-empty object"
        for item in body.get("inputs") or []:
            if not isinstance(item, dict) or str(item.get("id")) not in graph:
                return f"input {item!r} names no node"
            if item.get("type") not in ("image", "string", "number", "boolean"):
                return f"input {item!r} has an unknown type"
        outputs = body.get("outputs")
        if not isinstance(outputs, list) or not all(str(o) in graph for o in outputs):
            return "outputs must name nodes of the workflow"
        return None

    async def _workflows_list(self, request: web.Request) -> web.Response:
        return _envelope(list(self.workflows.values()))

    async def _workflows_create(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        problem = self._workflow_problem(body)
        if problem:
            return _envelope(None, code=400, msg=problem, status=400)
        workflow_id = f"wf_{next(self._ids)}"
        self.workflows[workflow_id] = {"id": workflow_id, **body}
        return _envelope({"id": workflow_id})

    async def _workflows_get(self, request: web.Request) -> web.Response:
        workflow = self.workflows.get(request.match_info["id"])
        if workflow is None:
            return _envelope(None, code=404, msg="workflow not found", status=404)
        return _envelope(workflow)

    async def _workflows_update(self, request: web.Request) -> web.Response:
        workflow_id = request.match_info["id"]
        if workflow_id not in self.workflows:
            return _envelope(None, code=404, msg="workflow not found", status=404)
        body = await self._json(request)
        problem = self._workflow_problem(body)
        if problem:
            return _envelope(None, code=400, msg=problem, status=400)
        self.workflows[workflow_id] = {"id": workflow_id, **body}
        return _envelope(self.workflows[workflow_id])

    async def _workflows_delete(self, request: web.Request) -> web.Response:
        if self.workflows.pop(request.match_info["id"], None) is None:
            return _envelope(None, code=404, msg="workflow not found", status=404)
        return _envelope(None)

    # --- files ------------------------------------------------------------------------------

    async def _files_upload(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            return _envelope(None, code=400, msg="multipart/form-data expected", status=400)
        form = await request.post()
        part = form.get("file")
        if not isinstance(part, web.FileField):
            return _envelope(None, code=400, msg="part 'file' is required", status=400)
        content = part.file.read()
        path = f"input/{uuid.uuid4().hex[:12]}_{part.filename}"
        self.files[path] = content
        return _envelope({"Path": path, "size": len(content)})

    # --- prompts ----------------------------------------------------------------------------

    def _backend_problem(self, name: str | None) -> web.Response | None:
        if not self.backends:
            return _envelope(None, code=NO_BACKEND, msg="this service has no backend yet")
        if name is not None:
            backend = self.backends.get(name)
            if backend is None:
                return _envelope(None, code=BACKEND_NOT_FOUND, msg=f"backend {name} not found")
            if backend.get("state") == "down":
                return _envelope(None, code=BACKEND_DOWN, msg=f"backend {name} is down")
        elif not any(b.get("state") != "down" for b in self.backends.values()):
            return _envelope(None, code=BACKEND_DOWN, msg="no backend is up")
        return None

    @staticmethod
    def _params(inputs: Any) -> list[tuple[str, dict[str, Any]]] | str:
        result = []
        for item in inputs or []:
            if not isinstance(item, dict) or "id" not in item:
                return f"input {item!r} has no id"
            params = item.get("params")
            if params is None:  # the flat form
                params = {k: v for k, v in item.items() if k != "id"}
            if not isinstance(params, dict):
                return f"params of {item['id']} must be an object"
            result.append((str(item["id"]), params))
        return result

    async def _prompts_submit(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if not isinstance(body, dict) or not body.get("workflow_id"):
            return _envelope(None, code=400, msg="workflow_id is required", status=400)
        problem = self._backend_problem(body.get("backend"))
        if problem is not None:
            return problem
        workflow = self.workflows.get(str(body["workflow_id"]))
        if workflow is None:
            return _envelope(None, code=404, msg="workflow not found", status=404)
        params = self._params(body.get("inputs"))
        if isinstance(params, str):
            return _envelope(None, code=400, msg=params, status=400)
        declared = {(str(i["id"]), i["name"]) for i in workflow.get("inputs") or []}
        graph = json.loads(json.dumps(workflow["workflow"]))
        for node, values in params:
            for key, value in values.items():
                if (node, key) not in declared:
                    return _envelope(
                        None, code=400, msg=f"input {node}.{key} is not declared", status=400
                    )
                graph[node].setdefault("inputs", {})[key] = value
        task = self._create_task(body, graph, [str(o) for o in workflow.get("outputs") or []])
        task.workflow_id = workflow["id"]
        return _envelope({"taskId": task.id})

    async def _prompts_workflow(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if not isinstance(body, dict) or not isinstance(body.get("workflow"), dict):
            return _envelope(None, code=400, msg="workflow is required", status=400)
        problem = self._backend_problem(body.get("backend"))
        if problem is not None:
            return problem
        params = self._params(body.get("inputs"))
        if isinstance(params, str):
            return _envelope(None, code=400, msg=params, status=400)
        graph = json.loads(json.dumps(body["workflow"]))
        for node, values in params:
            if node not in graph:
                return _envelope(None, code=400, msg=f"node {node} not found", status=400)
            graph[node].setdefault("inputs", {}).update(values)
        task = self._create_task(body, graph, [str(o) for o in body.get("outputs") or []])
        return _envelope({"taskId": task.id})

    def _create_task(
        self, body: dict[str, Any], graph: dict[str, Any], outputs: list[str]
    ) -> FakeTask:
        task_id = uuid.uuid4().hex
        workflow_id = str(body.get("workflow_id", ""))
        task = FakeTask(
            id=task_id,
            workflow_id=workflow_id or None,
            graph=_system_vars(graph, task_id, workflow_id),
            outputs=outputs,
            body=body,
            backend=body.get("backend"),
            failure=self._next_failure,
        )
        self._next_failure = None
        self.tasks[task_id] = task
        task.runner = asyncio.get_running_loop().create_task(self._run_task(task))
        return task

    async def _run_task(self, task: FakeTask) -> None:
        try:
            started = time.monotonic()
            for current in range(self.queue_frames - 1, -1, -1):
                await asyncio.sleep(self.step_delay)
                await self._broadcast(task.id, "pendding", {"current": current})
            assert self._release is not None
            await self._release.wait()
            task.status = "running"
            for percent in self.progress_steps:
                await asyncio.sleep(self.step_delay)
                await self._broadcast(task.id, "progress", {"process": percent})
            await asyncio.sleep(self.step_delay)
            if task.failure is not None:
                task.status = "failed"
                task.error_node, task.message = task.failure
                await self._broadcast(task.id, "error", {"message": task.message})
                await self._broadcast(task.id, "finished", {"success": False})
                return
            task.images = [
                f"{self.base_url}/v1/results/{task.id}/{node}_{i}.png"
                for i, node in enumerate(task.outputs or ["0"])
            ]
            task.cost_time = self.cost_time_ms or int((time.monotonic() - started) * 1000)
            task.status = "finished"
            await self._broadcast(task.id, "finished", {"success": True})
        except asyncio.CancelledError:
            if task.status != "cancel":
                raise

    async def _prompts_status(self, request: web.Request) -> web.Response:
        task = self.tasks.get(request.match_info["id"])
        if task is None:
            return _envelope(None, code=404, msg="task not found or expired", status=404)
        return _envelope(task.status_data())

    async def _prompts_cancel(self, request: web.Request) -> web.Response:
        task = self.tasks.get(request.match_info["id"])
        if task is None:
            return _envelope(None, code=404, msg="task not found or expired", status=404)
        if task.status in ("pendding", "running"):
            task.status = "cancel"
            if task.runner is not None:
                task.runner.cancel()
            await self._broadcast(task.id, "finished", {"success": False})
        return _envelope(None)

    async def _result_file(self, request: web.Request) -> web.Response:
        task = self.tasks.get(request.match_info["task"])
        if task is None or task.status != "finished":
            return _envelope(None, code=404, msg="result not found", status=404)
        return web.Response(body=png_bytes(), content_type="image/png")

    # --- websocket --------------------------------------------------------------------------

    async def _broadcast(self, task_id: str, kind: str, data: dict[str, Any]) -> None:
        # Like the sibling API: every frame carries all four keys; the type says which counts.
        payload = {"message": "", "current": 0, "success": False, "process": 0, **data}
        frame = json.dumps({"type": kind, "taskId": task_id, "data": payload})
        for ws in list(self._sockets):
            if ws.closed:
                self._sockets.discard(ws)
                continue
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(frame)

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.sockets_opened += 1
        self._sockets.add(ws)
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    with contextlib.suppress(ValueError):
                        frame = json.loads(message.data)
                        if isinstance(frame, dict) and frame.get("type") == "auth":
                            self.auth_frames.append(frame)  # accepted and ignored
        finally:
            self._sockets.discard(ws)
        return ws


def main() -> None:
    """``python -m tests.support.comfyone_server [--port N]``: serve until SIGINT or SIGTERM
    (or, with ``--until-stdin-closes``, until the parent closes our stdin)."""
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(description="Run the fake ComfyOne server.")
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--step-delay", type=float, default=0.2)
    parser.add_argument("--until-stdin-closes", action="store_true")
    args = parser.parse_args()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    if args.until_stdin_closes:
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    with FakeComfyOne(api_key=args.api_key, port=args.port, step_delay=args.step_delay) as server:
        print(server.base_url, flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
