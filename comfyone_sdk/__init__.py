"""Python client for the ComfyOne API: run ComfyUI workflows on OneThingAI's hosted instances.

Start with :class:`ComfyOne`; errors live in :mod:`comfyone_sdk.errors`.
"""

from ._base_client import Timeout
from ._client import ComfyOne
from .errors import (
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ComfyOneError,
    ConflictError,
    InputValidationError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TaskFailedError,
    TaskTimeoutError,
    UnprocessableEntityError,
)
from .models import (
    Backend,
    ErrorEvent,
    Event,
    FinishedEvent,
    PendingEvent,
    ProgressEvent,
    TaskEvent,
    TaskInput,
    TaskResult,
    TaskState,
    TaskStatus,
    UploadedFile,
    Workflow,
    WorkflowInput,
    WorkflowSpec,
    parse_event,
)
from .realtime import RealtimeClient

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "Backend",
    "BadRequestError",
    "ComfyOne",
    "ComfyOneError",
    "ConflictError",
    "ErrorEvent",
    "Event",
    "FinishedEvent",
    "InputValidationError",
    "InternalServerError",
    "NotFoundError",
    "PendingEvent",
    "PermissionDeniedError",
    "ProgressEvent",
    "RateLimitError",
    "RealtimeClient",
    "TaskEvent",
    "TaskFailedError",
    "TaskInput",
    "TaskResult",
    "TaskState",
    "TaskStatus",
    "TaskTimeoutError",
    "Timeout",
    "UnprocessableEntityError",
    "UploadedFile",
    "Workflow",
    "WorkflowInput",
    "WorkflowSpec",
    "__version__",
    "parse_event",
]
