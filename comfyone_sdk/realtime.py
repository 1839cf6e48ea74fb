"""Real-time task events over the ComfyOne WebSocket: one connection per account, typed events,
listeners, automatic reconnect with capped backoff, pings, and a clean ``close()``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import websocket

from . import _constants as c
from .models import Event, parse_event

__all__ = ["EventListener", "RealtimeClient", "ws_url_from_base"]

_log = logging.getLogger("comfyone_sdk.realtime")

EventListener = Callable[[Event], None]
Hook = Callable[[], None]


def ws_url_from_base(base_url: str) -> str:
    """``https://host`` -> ``wss://host/v1/ws`` (and ``http`` -> ``ws``)."""
    parts = urlsplit(base_url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, c.WS_PATH, "", ""))


def reconnect_delay(attempt: int, *, base: float, cap: float) -> float:
    """Capped exponential backoff with equal jitter for reconnect number ``attempt`` (0-based)."""
    ceiling = min(cap, base * 2.0**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class RealtimeClient:
    """A thin wrapper over ``websocket.WebSocketApp`` running in a daemon thread.

    Listeners get typed events for every task of the account (filter by ``event.task_id``);
    ``on_connect`` hooks run after every (re)connect, so a consumer can reconcile missed state;
    ``on_disconnect`` hooks run when a connection ends. Callbacks run on the socket thread: an
    exception there is logged and never stops the connection.
    """

    def __init__(
        self,
        api_key: str,
        *,
        url: str,
        ping_interval: float = c.WS_PING_INTERVAL,
        ping_timeout: float = c.WS_PING_TIMEOUT,
        max_reconnects: int | None = None,
        backoff_base: float = c.WS_RECONNECT_BASE,
        backoff_cap: float = c.WS_RECONNECT_CAP,
    ) -> None:
        self._api_key = api_key
        self.url = url
        self.ping_interval = ping_interval
        # websocket-client requires ping_timeout < ping_interval.
        self.ping_timeout = min(ping_timeout, ping_interval * 0.9) if ping_interval else None
        self.max_reconnects = max_reconnects
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._listeners: list[EventListener] = []
        self._connect_hooks: list[Hook] = []
        self._disconnect_hooks: list[Hook] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._app: websocket.WebSocketApp | None = None
        self.last_error: BaseException | None = None
        self.connections = 0  # successful handshakes so far, handy for tests and metrics

    def __repr__(self) -> str:  # never shows the key
        return f"<RealtimeClient url={self.url!r} connected={self.connected}>"

    # --- registration ---------------------------------------------------------------------

    def add_listener(self, listener: EventListener) -> EventListener:
        """Call ``listener(event)`` for every parsed event; returns it (usable as a decorator)."""
        with self._lock:
            self._listeners.append(listener)
        return listener

    def remove_listener(self, listener: EventListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def on_connect(self, hook: Hook) -> Hook:
        """Call ``hook()`` after every successful (re)connect."""
        with self._lock:
            self._connect_hooks.append(hook)
        return hook

    def on_disconnect(self, hook: Hook) -> Hook:
        """Call ``hook()`` whenever an established connection ends."""
        with self._lock:
            self._disconnect_hooks.append(hook)
        return hook

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> RealtimeClient:
        """Start the socket thread (idempotent) and return ``self``."""
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="comfyone-realtime", daemon=True)
        self._thread.start()
        return self

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected, the client gave up, or ``timeout`` seconds; True if connected."""
        deadline = time.monotonic() + timeout
        while not self._connected.wait(0.02):
            if time.monotonic() >= deadline or not self.running:
                return self._connected.is_set()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop reconnecting, close the socket and join the thread."""
        self._stop.set()
        app = self._app
        if app is not None:
            app.keep_running = False
            sock = app.sock
            if sock is not None and sock.connected:
                try:
                    sock.send_close()  # polite close frame
                    # shutdown() wakes the socket thread's select() at once; WebSocketApp.close()
                    # closes the descriptor instead, leaving it asleep until the ping timeout.
                    sock.abort()  # type: ignore[no-untyped-call]
                except Exception:  # the peer may be gone already; we are leaving anyway
                    _log.debug("error while closing the socket", exc_info=True)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._connected.clear()

    def __enter__(self) -> RealtimeClient:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- socket thread ----------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            connections_before = self.connections
            self._app = websocket.WebSocketApp(
                self.url,
                header=[f"Authorization: Bearer {self._api_key}"],
                on_open=self._on_open,
                on_message=self._on_message,
                on_error=self._on_error,
                on_close=self._on_close,
            )
            try:
                self._app.run_forever(
                    ping_interval=self.ping_interval or 0,
                    ping_timeout=self.ping_timeout,
                    skip_utf8_validation=True,
                    reconnect=0,  # reconnects are ours, with backoff
                )
            except Exception as exc:  # run_forever should not raise, but never die silently
                self.last_error = exc
                _log.warning("websocket loop crashed: %r", exc)
            if self._connected.is_set():
                self._connected.clear()
                self._call_hooks(self._disconnect_hooks, "on_disconnect")
            if self._stop.is_set():
                break
            if self.connections > connections_before:
                failures = 0  # the last connection worked: start the backoff afresh
            if self._fatal(self.last_error):
                _log.error("websocket authentication refused; not reconnecting")
                break
            if self.max_reconnects is not None and failures >= self.max_reconnects:
                _log.info("websocket gave up after %d reconnect attempts", failures)
                break
            delay = reconnect_delay(failures, base=self.backoff_base, cap=self.backoff_cap)
            failures += 1
            _log.info("websocket disconnected; reconnect %d in %.2f s", failures, delay)
            self._stop.wait(delay)

    @staticmethod
    def _fatal(error: BaseException | None) -> bool:
        status = getattr(error, "status_code", None)
        return status in (401, 403)

    def _on_open(self, app: websocket.WebSocketApp) -> None:
        self.last_error = None
        # The official SDKs send this first frame; the service accepts and ignores it.
        app.send(json.dumps({"type": "auth", "token": self._api_key}))
        self.connections += 1
        self._connected.set()
        _log.debug("websocket connected to %s", self.url)
        self._call_hooks(self._connect_hooks, "on_connect")

    def _on_message(self, app: websocket.WebSocketApp, message: Any) -> None:
        event = parse_event(message)
        if event is None:
            _log.warning("ignored websocket frame: %.200r", message)
            return
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                _log.exception("websocket listener %r raised; connection kept", listener)

    def _on_error(self, app: websocket.WebSocketApp, error: Any) -> None:
        if isinstance(error, BaseException):
            self.last_error = error
        _log.debug("websocket error: %r", error)

    def _on_close(self, app: websocket.WebSocketApp, code: Any, reason: Any) -> None:
        _log.debug("websocket closed (%s %s)", code, reason)

    def _call_hooks(self, hooks: list[Hook], name: str) -> None:
        with self._lock:
            hooks = list(hooks)
        for hook in hooks:
            try:
                hook()
            except Exception:
                _log.exception("websocket %s hook %r raised", name, hook)
