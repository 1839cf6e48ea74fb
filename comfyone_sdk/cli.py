"""The ``comfyone`` command: manage backends and workflows, upload files, run and follow tasks.

Exit codes: 0 success, 1 API or task error (one line on stderr), 2 usage error, 130 on Ctrl-C.
Configuration comes from ``$COMFYONE_API_KEY`` and ``$COMFYONE_BASE_URL`` (never printed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from . import _constants as c
from ._client import ComfyOne
from .errors import ComfyOneError
from .models import ErrorEvent, Event, FinishedEvent, PendingEvent, ProgressEvent

__all__ = ["main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad argument value that argparse could not catch."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _emit(args: argparse.Namespace, value: Any, text: str) -> None:
    if args.json:
        print(json.dumps(_jsonable(value), indent=2, ensure_ascii=False))
    elif text:
        print(text)


def _parse_value(text: str) -> Any:
    """``1024`` -> int, ``true`` -> bool, ``"x"`` -> str; anything else is taken verbatim."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parse_inputs(client: ComfyOne, pairs: Sequence[str]) -> dict[str, dict[str, Any]]:
    inputs: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        target, sep, raw = pair.partition("=")
        node, dot, key = target.partition(".")
        if not sep or not dot or not node or not key:
            raise UsageError(f"--input expects NODE.KEY=VALUE, got {pair!r}")
        # @PATH uploads the file and passes its reference, the usual image input.
        value = client.files.upload(raw[1:]).path if raw.startswith("@") else _parse_value(raw)
        inputs.setdefault(node, {})[key] = value
    return inputs


class _ProgressBar:
    """A one-line progress bar on stderr; redrawn in place with a carriage return."""

    width = 30

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.drawn = False

    def __call__(self, event: Event) -> None:
        if not self.enabled:
            return
        if isinstance(event, PendingEvent):
            line = f"queued (position {event.position})"
        elif isinstance(event, ProgressEvent):
            filled = int(self.width * event.percent / 100)
            line = f"[{'#' * filled}{'.' * (self.width - filled)}] {event.percent:5.1f}%"
        elif isinstance(event, FinishedEvent):
            line = "finished" if event.success else "failed"
        elif isinstance(event, ErrorEvent):
            line = f"error: {event.message}"
        else:
            return
        sys.stderr.write(f"\r{line:<60}")
        sys.stderr.flush()
        self.drawn = True

    def done(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _cmd_backends(client: ComfyOne, args: argparse.Namespace) -> None:
    action = args.action
    if action == "list":
        items = client.backends.list()
        _emit(args, items, "\n".join(f"{b.name}\t{b.state or '-'}" for b in items))
    elif action == "register":
        backend = client.backends.register(args.name)
        _emit(args, backend, f"registered {backend.name}")
    elif action == "get":
        backend = client.backends.get(args.name)
        _emit(args, backend, f"{backend.name}\t{backend.state or '-'}")
    elif action in ("up", "down"):
        result = client.backends.set_state(args.name, action)
        _emit(args, result or {"name": args.name, "state": action}, f"{args.name} is {action}")
    elif action == "delete":
        client.backends.delete(args.name)
        _emit(args, {"deleted": args.name}, f"deleted {args.name}")


def _cmd_workflows(client: ComfyOne, args: argparse.Namespace) -> None:
    action = args.action
    if action == "list":
        items = client.workflows.list()
        _emit(args, items, "\n".join(f"{w.id}\t{w.name or ''}" for w in items))
    elif action == "get":
        workflow = client.workflows.get(args.id)
        print(json.dumps(workflow.model_dump(mode="json"), indent=2, ensure_ascii=False))
    elif action == "create":
        try:
            spec = json.loads(Path(args.file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read workflow file {args.file}: {exc}") from exc
        if not isinstance(spec, dict):
            raise UsageError("the workflow file must hold a JSON object")
        workflow = client.workflows.create(
            name=spec.get("name") or Path(args.file).stem,
            workflow=spec.get("workflow", {}),
            outputs=spec.get("outputs", []),
            inputs=spec.get("inputs", []),
        )
        _emit(args, workflow, workflow.id)
    elif action == "delete":
        client.workflows.delete(args.id)
        _emit(args, {"deleted": args.id}, f"deleted {args.id}")


def _cmd_upload(client: ComfyOne, args: argparse.Namespace) -> None:
    uploaded = client.files.upload(args.file)
    _emit(args, uploaded, uploaded.path)


def _cmd_run(client: ComfyOne, args: argparse.Namespace) -> None:
    inputs = _parse_inputs(client, args.input or [])
    bar = _ProgressBar(enabled=not args.quiet)
    try:
        result = client.prompts.run(
            args.workflow_id,
            inputs,
            backend=args.backend,
            free_gpu=args.free_gpu,
            free_cache=args.free_cache,
            on_progress=lambda event: bar(event),
            timeout=args.timeout,
            poll_interval=args.poll_interval,
            cancel_on_timeout=args.cancel_on_timeout,
        )
    finally:
        bar.done()
    files = result.download(args.out) if args.out else []
    lines = [f"task {result.task_id} finished in {(result.cost_time or 0) / 1000:.2f} s"]
    lines += [str(p) for p in files] if files else result.images
    _emit(args, {**result.model_dump(mode="json"), "files": files}, "\n".join(lines))


def _cmd_status(client: ComfyOne, args: argparse.Namespace) -> None:
    status = client.prompts.status(args.task_id)
    text = [f"status: {status.status.value}"]
    if status.cost_time is not None:
        text.append(f"cost_time: {status.cost_time:g} ms")
    if status.error_node or status.message:
        text.append(f"error: node {status.error_node or '?'}: {status.message or ''}")
    text += status.images
    _emit(args, status, "\n".join(text))


def _cmd_cancel(client: ComfyOne, args: argparse.Namespace) -> None:
    client.prompts.cancel(args.task_id)
    _emit(args, {"cancelled": args.task_id}, f"cancelled {args.task_id}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comfyone",
        description="Drive the ComfyOne API. Reads $COMFYONE_API_KEY and $COMFYONE_BASE_URL.",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--base-url", help="API base URL (default: $COMFYONE_BASE_URL)")
    parser.add_argument("--timeout", type=float, help="per-request timeout in seconds")
    parser.add_argument("--debug", action="store_true", help="log requests to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    backends = sub.add_parser("backends", help="manage ComfyUI instances")
    bsub = backends.add_subparsers(dest="action", required=True, metavar="ACTION")
    bsub.add_parser("list", help="list instances")
    for action, text in [
        ("register", "register an instance id"),
        ("get", "show one instance"),
        ("up", "take an instance online"),
        ("down", "take an instance offline"),
        ("delete", "unregister an instance"),
    ]:
        bsub.add_parser(action, help=text).add_argument("name")
    backends.set_defaults(handler=_cmd_backends)

    workflows = sub.add_parser("workflows", help="manage workflows")
    wsub = workflows.add_subparsers(dest="action", required=True, metavar="ACTION")
    wsub.add_parser("list", help="list workflows")
    wsub.add_parser("get", help="print one workflow as JSON").add_argument("id")
    wsub.add_parser(
        "create", help="register a workflow from a JSON file {name, inputs, outputs, workflow}"
    ).add_argument("file")
    wsub.add_parser("delete", help="delete a workflow").add_argument("id")
    workflows.set_defaults(handler=_cmd_workflows)

    upload = sub.add_parser("upload", help="upload an input file; prints its reference")
    upload.add_argument("file")
    upload.set_defaults(handler=_cmd_upload)

    run = sub.add_parser("run", help="submit a task, follow it, download the results")
    run.add_argument("workflow_id")
    run.add_argument(
        "--input",
        "-i",
        action="append",
        metavar="NODE.KEY=VALUE",
        help="override an input (JSON values; @PATH uploads a file); repeatable",
    )
    run.add_argument("--out", "-o", metavar="DIR", help="download the results into DIR")
    run.add_argument("--backend", help="pin the task to one instance")
    run.add_argument("--free-gpu", action="store_true", default=None)
    run.add_argument("--free-cache", action="store_true", default=None)
    run.add_argument(
        "--wait",
        dest="timeout",
        type=float,
        default=c.DEFAULT_RUN_TIMEOUT,
        metavar="SECONDS",
        help="give up after SECONDS (default %(default)g)",
    )
    run.add_argument("--poll-interval", type=float, default=c.DEFAULT_POLL_INTERVAL)
    run.add_argument("--cancel-on-timeout", action="store_true")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    run.set_defaults(handler=_cmd_run)

    status = sub.add_parser("status", help="show a task's status")
    status.add_argument("task_id")
    status.set_defaults(handler=_cmd_status)

    cancel = sub.add_parser("cancel", help="cancel a task")
    cancel.add_argument("task_id")
    cancel.set_defaults(handler=_cmd_cancel)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with 2 on a usage error
    if not os.environ.get(c.ENV_API_KEY):
        print(f"comfyone: error: set ${c.ENV_API_KEY} to your API key", file=sys.stderr)
        return EXIT_USAGE
    try:
        with ComfyOne(
            base_url=args.base_url,
            timeout=args.timeout,
            debug=args.debug,
        ) as client:
            args.handler(client, args)
    except UsageError as exc:
        print(f"comfyone: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ComfyOneError as exc:
        print(f"comfyone: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("comfyone: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
