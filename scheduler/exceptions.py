"""The app's API errors and the exception handler that renders every error as JSON.

Services raise these; views never catch them. Bodies are `{"detail": ..., "code": ...}`,
or DRF's `{"<field>": ["<message>"]}` for invalid fields.
"""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler


class BackendNotFound(APIException):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "No such backend in this app."
    default_code = "not_found"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with an existing backend."
    default_code = "conflict"


class NameTaken(Conflict):
    default_detail = "A backend with this name already exists in this app."
    default_code = "name_taken"


class HostTaken(Conflict):
    default_detail = "A backend with this host is already registered."
    default_code = "host_taken"


class NoBackendAvailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "No active backend is available for this app."
    default_code = "no_backend_available"


def _flatten(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """Nested field errors as one level: `{"inputs": {"0": {"id": [...]}}}` becomes
    `{"inputs[0].id": [...]}`, so every 400 has the documented `{field: [message]}` shape."""
    if isinstance(errors, dict):
        flat: dict[str, list[str]] = {}
        for key, value in errors.items():
            if str(key).isdigit():
                name = f"{prefix}[{key}]"
            elif key == "non_field_errors" and prefix:
                name = prefix  # the error is about the nested value as a whole
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            flat.update(_flatten(value, name))
        return flat
    if isinstance(errors, list) and any(isinstance(item, dict | list) for item in errors):
        flat = {}
        for index, item in enumerate(errors):
            if item:  # DRF puts {} for the list items that were valid
                flat.update(_flatten(item, f"{prefix}[{index}]"))
        return flat
    messages = errors if isinstance(errors, list) else [errors]
    return {prefix or "non_field_errors": [str(message) for message in messages]}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus a machine-readable `code` beside every `detail`, and field errors
    flattened to one level."""
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ValidationError):
        response.data = _flatten(response.data)
        return response
    if isinstance(exc, APIException) and isinstance(response.data, dict):
        detail = response.data.get("detail")
        if detail is not None and set(response.data) == {"detail"}:
            code = getattr(detail, "code", None) or exc.default_code
            response.data = {"detail": str(detail), "code": code}
    return response


class TaskNotFound(APIException):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "No such task."
    default_code = "not_found"


class TaskAlreadyFinished(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The task has already ended."
    default_code = "task_ended"


class ComfyOneNotConfigured(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "This site has no ComfyOne API key (COMFYONE_API_KEY)."
    default_code = "comfyone_not_configured"


class UpstreamError(APIException):
    """ComfyOne refused the request or could not be reached: 502 with what it said."""

    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "upstream_error"

    def __init__(
        self, detail: str, *, upstream_code: int | None = None, upstream_msg: str = ""
    ) -> None:
        super().__init__(detail)
        # Set after DRF's constructor, which would turn every value into a string.
        self.detail = {
            "detail": detail,
            "code": self.default_code,
            "upstream_code": upstream_code,
            "upstream_msg": upstream_msg,
        }
