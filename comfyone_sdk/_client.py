"""The ``ComfyOne`` client: configuration (arguments, then environment, then defaults) and the
resources hung off it.
"""

from __future__ import annotations

import logging
import os
from types import TracebackType
from typing import Any

from . import _constants as c
from ._base_client import BaseClient, Timeout
from ._resources import Backends, Files, Prompts, Workflows
from .errors import ComfyOneError
from .realtime import RealtimeClient, ws_url_from_base

__all__ = ["ComfyOne"]

_log = logging.getLogger("comfyone_sdk")


def _enable_debug_logging() -> None:
    _log.setLevel(logging.DEBUG)
    if not _log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        _log.addHandler(handler)


class ComfyOne:
    """A client for the ComfyOne API.

    ``api_key`` falls back to ``$COMFYONE_API_KEY``; ``base_url`` to ``$COMFYONE_BASE_URL``, then
    the hosted service; ``ws_url`` to ``$COMFYONE_WS_URL``, then the base URL with a ws scheme
    and path ``/v1/ws``. ``timeout`` is seconds or ``(connect, read)``; ``max_retries`` counts
    retries after the first attempt of a request that is safe to repeat. ``debug=True`` logs
    every request through the ``comfyone_sdk`` logger; the key is never logged.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        ws_url: str | None = None,
        timeout: Timeout | None = (c.DEFAULT_CONNECT_TIMEOUT, c.DEFAULT_READ_TIMEOUT),
        max_retries: int = c.DEFAULT_MAX_RETRIES,
        debug: bool = False,
    ) -> None:
        api_key = api_key or os.environ.get(c.ENV_API_KEY)
        if not api_key:
            raise ComfyOneError(f"no API key: pass ComfyOne(api_key=...) or set ${c.ENV_API_KEY}")
        base_url = base_url or os.environ.get(c.ENV_BASE_URL) or c.DEFAULT_BASE_URL
        self.ws_url = ws_url or os.environ.get(c.ENV_WS_URL) or ws_url_from_base(base_url)
        if debug:
            _enable_debug_logging()
        self._api_key = api_key
        self._client = BaseClient(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self.backends = Backends(self._client)
        self.workflows = Workflows(self._client)
        self.files = Files(self._client)
        self.prompts = Prompts(self._client, self.files, self.realtime)

    @property
    def base_url(self) -> str:
        return self._client.base_url

    def __repr__(self) -> str:  # never shows the key
        return f"<ComfyOne base_url={self.base_url!r}>"

    def realtime(self, **options: Any) -> RealtimeClient:
        """A (not yet started) :class:`RealtimeClient` for this account.

        ``options`` go to :class:`RealtimeClient` (``ping_interval``, ``max_reconnects``,
        ``backoff_base``, ``backoff_cap``). Call ``start()`` or use it as a context manager.
        """
        return RealtimeClient(self._api_key, url=self.ws_url, **options)

    events = realtime  # short alias

    def close(self) -> None:
        """Close the HTTP session (pooled keep-alive connections)."""
        self._client.close()

    def __enter__(self) -> ComfyOne:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
