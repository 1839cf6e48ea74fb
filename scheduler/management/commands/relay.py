"""`manage.py relay`: follow ComfyOne's task events until SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from scheduler.comfyone import comfyone_client
from scheduler.conf import scheduler_settings
from scheduler.relay import Relay


class Command(BaseCommand):
    help = "Relay ComfyOne task events to the database and the channel layer (one per site)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not scheduler_settings.COMFYONE_API_KEY:
            raise CommandError(
                "Set COMFYONE_API_KEY (and COMFYONE_BASE_URL for a self-hosted one)."
            )
        stop = threading.Event()

        def request_stop(signum: int, frame: Any) -> None:
            self.stderr.write(f"relay: signal {signum}, stopping")
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        relay = Relay(client=comfyone_client())
        self.stdout.write(f"relay {relay.holder}: following {relay.client.ws_url}")
        relay.run(stop)
