"""Every exception the SDK raises, in one tree rooted at :class:`ComfyOneError`::

ComfyOneError
├── APIConnectionError            network failure, no HTTP response
│   └── APITimeoutError           connect or read timeout
├── APIStatusError                HTTP 4xx/5xx (.status_code, .response, .request)
│   ├── BadRequestError           400
│   ├── AuthenticationError       401
│   ├── PermissionDeniedError     403
│   ├── NotFoundError             404
│   ├── ConflictError             409
│   ├── UnprocessableEntityError  422
│   ├── RateLimitError            429 (.retry_after seconds)
│   └── InternalServerError       5xx
├── APIResponseError              envelope with code != 0, even on HTTP 200 (.code, .msg)
├── InputValidationError          inputs rejected before anything is sent (also a ValueError)
├── TaskFailedError               a task ended failed or cancelled (.task_id, .node, .message)
└── TaskTimeoutError              prompts.run() gave up waiting (.task_id)
"""

from __future__ import annotations

from typing import Any

import requests

__all__ = [
    "APIConnectionError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ComfyOneError",
    "ConflictError",
    "InputValidationError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "TaskFailedError",
    "TaskTimeoutError",
    "UnprocessableEntityError",
]


class ComfyOneError(Exception):
    """Root of every error raised by the SDK."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(ComfyOneError):
    """The request did not produce an HTTP response (DNS, refused, reset, TLS...)."""

    def __init__(
        self, message: str, *, request: requests.PreparedRequest | requests.Request | None = None
    ) -> None:
        super().__init__(message)
        self.request = request


class APITimeoutError(APIConnectionError):
    """The connect or read timeout expired."""


class APIStatusError(ComfyOneError):
    """The server answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        response: requests.Response,
        request: requests.PreparedRequest | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = response
        self.request = request
        self.code = code

    def __str__(self) -> str:
        return f"HTTP {self.status_code}: {self.message}"


class BadRequestError(APIStatusError):
    """HTTP 400."""


class AuthenticationError(APIStatusError):
    """HTTP 401: the API key is missing or wrong."""


class PermissionDeniedError(APIStatusError):
    """HTTP 403."""


class NotFoundError(APIStatusError):
    """HTTP 404: unknown backend, workflow, or an unknown or expired task."""


class ConflictError(APIStatusError):
    """HTTP 409."""


class UnprocessableEntityError(APIStatusError):
    """HTTP 422."""


class RateLimitError(APIStatusError):
    """HTTP 429; ``retry_after`` is the server's Retry-After in seconds, if it sent one."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        response: requests.Response,
        request: requests.PreparedRequest | None = None,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, status_code=status_code, response=response, request=request, code=code
        )
        self.retry_after = retry_after


class InternalServerError(APIStatusError):
    """HTTP 5xx."""


class APIResponseError(ComfyOneError):
    """The envelope's ``code`` is not 0 (the service does this with HTTP 200, e.g. 2006)."""

    def __init__(
        self,
        message: str,
        *,
        code: int,
        msg: str,
        request: requests.PreparedRequest | None = None,
        response: requests.Response | None = None,
        data: Any = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.msg = msg
        self.request = request
        self.response = response
        self.data = data

    def __str__(self) -> str:
        return f"ComfyOne error {self.code}: {self.msg}"


class InputValidationError(ComfyOneError, ValueError):
    """An argument was rejected by the SDK's models before any request was sent."""


class TaskFailedError(ComfyOneError):
    """A task ended in ``failed`` or ``cancelled``; ``node`` is the failing node id if known."""

    def __init__(
        self,
        task_id: str,
        *,
        node: str | None = None,
        message: str | None = None,
        status: str = "failed",
    ) -> None:
        text = f"task {task_id} {status}"
        if node:
            text += f" at node {node}"
        if message:
            text += f": {message}"
        super().__init__(text)
        self.task_id = task_id
        self.node = node
        self.message = message or ""
        self.status = status


class TaskTimeoutError(ComfyOneError):
    """``prompts.run()`` stopped waiting for a task after its timeout."""

    def __init__(
        self, task_id: str, *, timeout: float | None = None, cancelled: bool = False
    ) -> None:
        text = f"task {task_id} did not finish"
        if timeout is not None:
            text += f" within {timeout:g} s"
        if cancelled:
            text += " (cancelled)"
        super().__init__(text)
        self.task_id = task_id
        self.timeout = timeout
        self.cancelled = cancelled


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """The most specific :class:`APIStatusError` subclass for an HTTP status."""
    if status_code >= 500:
        return InternalServerError
    return _STATUS_ERRORS.get(status_code, APIStatusError)
