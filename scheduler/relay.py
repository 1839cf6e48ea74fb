"""The relay: one ComfyOne WebSocket per deployment, turned into task rows and broadcasts.

It holds a lease in the database so that only one relay consumes events at a time (the
service caps WebSocket connections per account), applies every event through the services,
and after each (re)connect polls the status of every open task, so no terminal state is
missed while it was away. `python manage.py relay` runs it as its own process; with the
in-memory channel layer it runs inside the server process instead (`EmbeddedRelay`).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from django.db import (
    DatabaseError,
    IntegrityError,
    close_old_connections,
    connections,
    transaction,
)
from django.db.models import Q
from django.utils import timezone

from comfyone_sdk import ComfyOne, ComfyOneError, ErrorEvent, FinishedEvent, TaskEvent
from scheduler import services
from scheduler.conf import scheduler_settings
from scheduler.models import Lease

logger = logging.getLogger(__name__)

LEASE_NAME = "comfyone-relay"
_RECONCILE = object()  # queued after each (re)connect and periodically: poll open tasks


def lease_acquire(*, name: str, holder: str, seconds: float) -> bool:
    """Take or renew the lease; True while `holder` has it."""
    now = timezone.now()
    expires = now + timedelta(seconds=seconds)
    with transaction.atomic():
        taken = (
            Lease.objects.filter(name=name)
            .filter(Q(holder=holder) | Q(expires__lt=now))
            .update(holder=holder, expires=expires)
        )
        if taken:
            return True
        if Lease.objects.filter(name=name).exists():
            return False
        try:
            with transaction.atomic():
                Lease.objects.create(name=name, holder=holder, expires=expires)
        except IntegrityError:
            return False  # another relay created it first
        return True


def lease_release(*, name: str, holder: str) -> None:
    Lease.objects.filter(name=name, holder=holder).delete()


class Relay:
    """Follows ComfyOne's event stream for as long as `stop` is not set."""

    def __init__(
        self,
        *,
        client: ComfyOne,
        holder: str | None = None,
        lease_seconds: float | None = None,
        reconcile_seconds: float | None = None,
        realtime_options: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds or scheduler_settings.RELAY_LEASE_SECONDS
        self.reconcile_seconds = reconcile_seconds or scheduler_settings.RELAY_RECONCILE_SECONDS
        self.realtime_options = realtime_options or {}
        self.active = threading.Event()  # set while this relay holds the lease and listens
        self.events_applied = 0

    # --- event handling ----------------------------------------------------------------------
    def handle(self, event: TaskEvent) -> None:
        task = services.task_apply_event(event=event)
        self.events_applied += 1
        # Results, cost and the failing node come from the status endpoint, not the frame.
        if task is not None and isinstance(event, FinishedEvent | ErrorEvent):
            self.reconcile([event.task_id])

    def reconcile(self, task_ids: list[str] | None = None) -> None:
        try:
            count = services.task_reconcile(client=self.client, task_ids=task_ids)
        except Exception:
            logger.exception("relay: reconcile failed")
            return
        if task_ids is None:
            logger.info("relay: reconciled %d open task(s)", count)

    # --- life cycle -------------------------------------------------------------------------
    def _renew_every(self) -> float:
        return max(0.05, self.lease_seconds / 3)

    def run(self, stop: threading.Event) -> None:
        said_waiting = False
        while not stop.is_set():
            try:
                if self._lease():
                    self._run_once(stop)
            except DatabaseError:
                # The database went away: keep trying, like the socket does, instead of dying.
                logger.exception("relay: database error; retrying")
                close_old_connections()
            if not stop.is_set() and not self.active.is_set():
                if not said_waiting:
                    logger.info("relay: another relay holds the lease, or none could be taken")
                    said_waiting = True
                stop.wait(self._renew_every())
        try:
            lease_release(name=LEASE_NAME, holder=self.holder)
        except DatabaseError:
            logger.exception("relay: could not release the lease; it expires by itself")
        connections.close_all()
        logger.info("relay: stopped")

    def _lease(self) -> bool:
        return lease_acquire(name=LEASE_NAME, holder=self.holder, seconds=self.lease_seconds)

    def _run_once(self, stop: threading.Event) -> None:
        try:
            self._follow(stop)
        finally:
            self.active.clear()

    def _follow(self, stop: threading.Event) -> None:
        logger.info("relay %s: lease taken; connecting to %s", self.holder, self.client.ws_url)
        # The socket thread only queues; this thread does every database write, in order, on
        # its own connection (closed when the relay stops).
        inbox: queue.Queue[TaskEvent | object] = queue.Queue()
        realtime = self.client.realtime(**self.realtime_options)
        realtime.add_listener(inbox.put)
        realtime.on_connect(lambda: inbox.put(_RECONCILE))
        realtime.on_disconnect(lambda: logger.warning("relay: ComfyOne socket closed"))
        realtime.start()
        self.active.set()
        renew_at = reconcile_at = time.monotonic()
        try:
            while not stop.is_set():
                now = time.monotonic()
                if now >= renew_at:
                    close_old_connections()
                    if not lease_acquire(
                        name=LEASE_NAME, holder=self.holder, seconds=self.lease_seconds
                    ):
                        logger.warning("relay: lost the lease; stepping down")
                        return
                    renew_at = now + self._renew_every()
                if now >= reconcile_at + self.reconcile_seconds:
                    inbox.put(_RECONCILE)
                    reconcile_at = now
                try:
                    item = inbox.get(timeout=max(0.01, renew_at - time.monotonic()))
                except queue.Empty:
                    continue
                if item is _RECONCILE:
                    self.reconcile()
                    reconcile_at = time.monotonic()
                else:
                    self._apply(item)  # type: ignore[arg-type]
        finally:
            realtime.close()

    def _apply(self, event: TaskEvent) -> None:
        try:
            self.handle(event)
        except Exception:
            # One bad event (or a database hiccup) must not stop the stream; the next
            # reconcile repairs whatever it missed.
            logger.exception("relay: applying %r failed", event)


class EmbeddedRelay:
    """Runs a `Relay` on a daemon thread inside the server process."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="comfyone-relay", daemon=True)

    def _run(self) -> None:
        try:
            self.relay.run(self.stop)
        except Exception:
            logger.exception("embedded relay crashed")

    def start(self) -> EmbeddedRelay:
        self.thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self.stop.set()
        self.thread.join(timeout)


def embedded_relay_from_settings() -> EmbeddedRelay | None:
    """The relay this server process should run itself, if any (see the RELAY setting)."""
    if scheduler_settings.RELAY != "embedded":
        return None
    if not scheduler_settings.COMFYONE_API_KEY:
        logger.warning("relay: COMFYONE_API_KEY is not set; live task progress is off")
        return None
    from scheduler.comfyone import comfyone_client

    try:
        client = comfyone_client()
    except ComfyOneError:
        logger.exception("relay: cannot build the ComfyOne client")
        return None
    return EmbeddedRelay(Relay(client=client)).start()


class RelayLifespan:
    """An ASGI lifespan app that runs the embedded relay for as long as the server runs."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        import asyncio

        relay: EmbeddedRelay | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                relay = embedded_relay_from_settings()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if relay is not None:
                    await asyncio.to_thread(relay.close)
                await send({"type": "lifespan.shutdown.complete"})
                return
