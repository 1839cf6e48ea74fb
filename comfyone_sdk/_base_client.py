"""Private transport under every resource: one ``requests.Session``, URL building, the Bearer
header, the ``{code, msg, data}`` envelope, error mapping, timeouts and safe retries.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from . import _constants as c
from .errors import (
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    RateLimitError,
    status_error_class,
)

_log = logging.getLogger("comfyone_sdk")

Timeout = float | tuple[float, float]
"""Seconds: one number for both, or ``(connect, read)``."""

# Methods whose repetition cannot create a second resource (RFC 9110 idempotent methods).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})


def normalize_timeout(timeout: Timeout | None) -> tuple[float, float]:
    """Turn a user timeout into requests' ``(connect, read)`` tuple; ``None`` = the defaults."""
    if timeout is None:
        return (c.DEFAULT_CONNECT_TIMEOUT, c.DEFAULT_READ_TIMEOUT)
    if isinstance(timeout, tuple):
        return (float(timeout[0]), float(timeout[1]))
    return (float(timeout), float(timeout))


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; ``None`` when absent or invalid."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def retry_delay(
    attempt: int,
    *,
    retry_after: float | None = None,
    base: float = c.RETRY_BACKOFF_BASE,
    cap: float = c.RETRY_BACKOFF_CAP,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based).

    A server's Retry-After wins (clamped to ``RETRY_AFTER_MAX``); otherwise exponential backoff
    capped at ``cap`` with "equal jitter", so clients that failed together do not retry together.
    """
    if retry_after is not None:
        return min(retry_after, c.RETRY_AFTER_MAX)
    ceiling = min(cap, base * 2.0**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _sent_nothing(exc: requests.RequestException) -> bool:
    """True when the connection failed before any byte of the request left this machine."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3 wraps it in MaxRetryError
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def _new_session(base_url: str) -> requests.Session:
    """A session that reads proxy and CA settings from the environment once, not per request.

    With ``trust_env`` on, requests re-scans ``os.environ`` (and .netrc) on every call, which
    costs more than the request itself on a fast network.
    """
    session = requests.Session()
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session


class BaseClient:
    """Owns the session and the request loop; resources call :meth:`request`.

    ``sleep`` is the function used between retries: tests replace it (e.g. with a list's
    ``append``) to check the chosen delays without waiting.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout: Timeout | None,
        max_retries: int,
        session: requests.Session | None = None,
    ) -> None:
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = normalize_timeout(timeout)
        self.max_retries = max(0, int(max_retries))
        self.sleep: Callable[[float], None] = time.sleep
        self.session = session or _new_session(self.base_url)
        self.session.headers.update(
            {"Authorization": f"Bearer {api_key}", "User-Agent": c.USER_AGENT}
        )

    def __repr__(self) -> str:  # never shows the key
        return f"<BaseClient base_url={self.base_url!r}>"

    def url(self, path: str) -> str:
        """An absolute URL for ``path``; absolute URLs (result files) pass through."""
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.base_url + "/", path.lstrip("/"))

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        files: Mapping[str, Any] | None = None,
        timeout: Timeout | None = None,
        idempotent: bool | None = None,
        raw: bool = False,
    ) -> Any:
        """Send one API call and return the envelope's ``data`` (or the raw bytes).

        ``idempotent`` overrides the method-based rule: ``False`` forbids a retry once the
        request may have reached the server (task submission, uploads); a connection that was
        never established is always safe to retry.
        """
        method = method.upper()
        url = self.url(path)
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        timeouts = normalize_timeout(timeout) if timeout is not None else self.timeout
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                response = self.session.request(
                    method, url, json=json, files=files, timeout=timeouts
                )
            except requests.RequestException as exc:
                elapsed = time.monotonic() - started
                safe = idempotent or _sent_nothing(exc)
                error: APIConnectionError
                if isinstance(exc, requests.Timeout):
                    error = APITimeoutError(
                        f"{method} {url} timed out after {elapsed:.2f} s", request=exc.request
                    )
                else:
                    error = APIConnectionError(
                        f"{method} {url} failed: {type(exc).__name__}", request=exc.request
                    )
                if safe and attempt < self.max_retries:
                    delay = retry_delay(attempt)
                    _log.debug(
                        "%s %s -> %s after %.3f s; retry %d/%d in %.3f s",
                        method,
                        url,
                        type(exc).__name__,
                        elapsed,
                        attempt + 1,
                        self.max_retries,
                        delay,
                    )
                    self.sleep(delay)
                    attempt += 1
                    continue
                _log.debug(
                    "%s %s -> %s after %.3f s; not retried (%s)",
                    method,
                    url,
                    type(exc).__name__,
                    elapsed,
                    "attempts exhausted" if safe else "may have reached the server",
                )
                raise error from exc

            elapsed = time.monotonic() - started
            _log.debug("%s %s -> HTTP %d in %.3f s", method, url, response.status_code, elapsed)
            if response.status_code >= 400:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if (
                    idempotent
                    and response.status_code in c.RETRYABLE_STATUS_CODES
                    and attempt < self.max_retries
                ):
                    delay = retry_delay(attempt, retry_after=retry_after)
                    _log.debug(
                        "%s %s: retry %d/%d in %.3f s (HTTP %d%s)",
                        method,
                        url,
                        attempt + 1,
                        self.max_retries,
                        delay,
                        response.status_code,
                        f", Retry-After {retry_after:g}" if retry_after is not None else "",
                    )
                    response.close()
                    self.sleep(delay)
                    attempt += 1
                    continue
                raise self._status_error(response, retry_after)
            if raw:
                return response.content
            return self._unwrap(response)

    @staticmethod
    def _envelope(response: requests.Response) -> dict[str, Any] | None:
        try:
            body = response.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _status_error(
        self, response: requests.Response, retry_after: float | None
    ) -> APIStatusError:
        body = self._envelope(response)
        code: int | None = None
        if body is not None:
            message = str(body.get("msg") or body.get("message") or body.get("detail") or "")
            code = body.get("code") if isinstance(body.get("code"), int) else None
        else:
            message = response.text[:200].strip()
        message = message or response.reason or "error"
        cls = status_error_class(response.status_code)
        kwargs: dict[str, Any] = {
            "status_code": response.status_code,
            "response": response,
            "request": response.request,
            "code": code,
        }
        if cls is RateLimitError:
            kwargs["retry_after"] = retry_after
        return cls(message, **kwargs)

    def _unwrap(self, response: requests.Response) -> Any:
        body = self._envelope(response)
        if body is None:
            if not response.content:
                return None
            raise APIResponseError(
                f"unexpected non-envelope reply from {response.url}",
                code=-1,
                msg="reply is not a JSON envelope",
                request=response.request,
                response=response,
            )
        if "code" not in body:
            # Liberal: a bare JSON object is taken as the data itself.
            return body
        msg = str(body.get("msg") if body.get("msg") is not None else body.get("message") or "")
        try:
            code = int(body["code"])
        except (TypeError, ValueError):
            code = -1
        if code != 0:
            raise APIResponseError(
                f"ComfyOne error {code}: {msg}",
                code=code,
                msg=msg,
                request=response.request,
                response=response,
                data=body.get("data"),
            )
        return body.get("data")
