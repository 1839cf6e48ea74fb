"""REST API views: parse the request, call one selector or service, render the result."""

from __future__ import annotations

import mimetypes
from typing import Any
from urllib.parse import urlsplit

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from scheduler import selectors, services
from scheduler.conf import scheduler_settings
from scheduler.exceptions import api_exception_handler
from scheduler.models import APP_ID_RE, BackendStatus
from scheduler.serializers import (
    AppIdSerializer,
    BackendCreateSerializer,
    BackendFilterSerializer,
    BackendMoveBodySerializer,
    BackendMoveSerializer,
    BackendSerializer,
    BackendStatusBodySerializer,
    BackendStatusSerializer,
    BackendWeightSerializer,
    ErrorSerializer,
    PolicyInfoSerializer,
    PolicyInputSerializer,
    PolicySerializer,
    SelectionSerializer,
    TaskFilterSerializer,
    TaskPageSerializer,
    TaskSerializer,
    TaskSubmitSerializer,
    UpstreamErrorSerializer,
)

# --- OpenAPI: the parameters and error responses shared by many operations -------------------

APP_ID_PARAM = OpenApiParameter(
    "app_id",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The app: 1-64 characters from A-Z a-z 0-9 _ . -",
    pattern=r"^[A-Za-z0-9_.\-]{1,64}$",
)
BACKEND_ID_PARAM = OpenApiParameter(
    "backend_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The backend's id."
)
STATUS_FILTER = OpenApiParameter(
    "status", OpenApiTypes.STR, enum=BackendStatus.values, description="Only this status."
)

FIELD_ERRORS_SCHEMA = {
    "type": "object",
    "description": "Invalid fields: each field name maps to a list of messages.",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}
ERROR_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
    "required": ["detail", "code"],
}
BAD_REQUEST = OpenApiResponse(
    {"anyOf": [FIELD_ERRORS_SCHEMA, ERROR_SCHEMA]},
    description="Invalid input: per-field messages, or a body that is not JSON.",
)
UNAUTHENTICATED = OpenApiResponse(ErrorSerializer, description="No or invalid credentials.")
FORBIDDEN = OpenApiResponse(ErrorSerializer, description="The user may not do this.")
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such backend in this app.")
CONFLICT = OpenApiResponse(ErrorSerializer, description="The name or host is already taken.")
UNAVAILABLE = OpenApiResponse(ErrorSerializer, description="The app has no active backend.")
TASK_NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such task, or not yours.")
UPSTREAM = OpenApiResponse(
    UpstreamErrorSerializer, description="ComfyOne refused the request or could not be reached."
)
READ_ERRORS: dict[int, Any] = {400: BAD_REQUEST, 401: UNAUTHENTICATED, 403: FORBIDDEN}
WRITE_ERRORS: dict[int, Any] = {400: BAD_REQUEST, 401: UNAUTHENTICATED, 403: FORBIDDEN}

BACKENDS_TAG = ["backends"]
SELECTION_TAG = ["selection"]
TASKS_TAG = ["tasks"]


def _validated(serializer_class: type[Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _app_id(value: str) -> str:
    # The valid case, on every request, skips building a serializer; the invalid one gets
    # the serializer's own message.
    if APP_ID_RE.fullmatch(value):
        return value
    return _validated(AppIdSerializer, {"app_id": value})["app_id"]


def _pick(source: Any, *keys: str) -> dict[str, Any]:
    """The given keys of a query dict or JSON body; a body that is not an object has none."""
    if not hasattr(source, "keys"):
        return {}
    return {key: source[key] for key in keys if key in source}


def _query_or_body(request: Request, key: str, serializer_class: type[Serializer]) -> Any:
    """`key` from the query string (the original API) or the JSON body, validated.

    When both carry it, both must be valid and agree: a request that says two things is
    refused rather than half-obeyed.
    """
    if not isinstance(request.data, dict):
        raise ValidationError({"non_field_errors": ["The body must be a JSON object."]})
    sources = [
        _pick(request.query_params, key),
        _pick(request.data, key),
    ]
    given = [source for source in sources if source]
    if not given:
        return _validated(serializer_class, {})[key]
    values = [_validated(serializer_class, source)[key] for source in given]
    if len(set(values)) > 1:
        raise ValidationError({key: [f"The query string and the body give different {key}."]})
    return values[0]


class SchedulerAPIView(APIView):
    # Base of every scheduler view: its own auth, permissions, JSON and error format, so the
    # app behaves the same in any site whatever that site's REST_FRAMEWORK defaults.
    # (A comment, not a docstring: drf-spectacular would show it on every operation.)

    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]

    def get_authenticators(self) -> list[Any]:
        return [cls() for cls in scheduler_settings.AUTHENTICATION_CLASSES]

    def get_permissions(self) -> list[Any]:
        return [cls() for cls in scheduler_settings.PERMISSION_CLASSES]

    def get_exception_handler(self) -> Any:
        return api_exception_handler


class AppBackendsView(SchedulerAPIView):
    @extend_schema(
        operation_id="backends_list",
        summary="List an app's backends",
        description="Any status, oldest first; an unknown app has an empty list.",
        tags=BACKENDS_TAG,
        parameters=[APP_ID_PARAM, STATUS_FILTER],
        responses={200: BackendSerializer(many=True), **READ_ERRORS},
    )
    def get(self, request: Request, app_id: str) -> Response:
        app_id = _app_id(app_id)
        filters = _validated(BackendFilterSerializer, _pick(request.query_params, "status"))
        backends = selectors.backend_list(app_id=app_id, status=filters.get("status"))
        return Response(BackendSerializer(backends, many=True).data)

    @extend_schema(
        operation_id="backends_create",
        summary="Add a backend to an app",
        tags=BACKENDS_TAG,
        parameters=[APP_ID_PARAM],
        request=BackendCreateSerializer,
        responses={201: BackendSerializer, **WRITE_ERRORS, 409: CONFLICT},
    )
    def post(self, request: Request, app_id: str) -> Response:
        app_id = _app_id(app_id)
        data = _validated(BackendCreateSerializer, request.data)
        backend = services.backend_register(app_id=app_id, **data)
        return Response(BackendSerializer(backend).data, status=status.HTTP_201_CREATED)


class BackendDetailView(SchedulerAPIView):
    @extend_schema(
        operation_id="backends_retrieve",
        summary="Get one backend",
        tags=BACKENDS_TAG,
        parameters=[APP_ID_PARAM, BACKEND_ID_PARAM],
        responses={200: BackendSerializer, **READ_ERRORS, 404: NOT_FOUND},
    )
    def get(self, request: Request, app_id: str, backend_id: str) -> Response:
        backend = selectors.backend_get(app_id=_app_id(app_id), backend_id=backend_id)
        return Response(BackendSerializer(backend).data)

    @extend_schema(
        operation_id="backends_set_status",
        summary="Set a backend's status",
        description=(
            "Give the status as the query parameter `?status=down` (the original API) or as "
            'the JSON body `{"status": "down"}`. A `down` backend is never selected.'
        ),
        tags=BACKENDS_TAG,
        parameters=[
            APP_ID_PARAM,
            BACKEND_ID_PARAM,
            OpenApiParameter("status", OpenApiTypes.STR, enum=BackendStatus.values),
        ],
        request=BackendStatusBodySerializer,
        responses={200: BackendSerializer, **WRITE_ERRORS, 404: NOT_FOUND},
    )
    def patch(self, request: Request, app_id: str, backend_id: str) -> Response:
        backend = selectors.backend_get(app_id=_app_id(app_id), backend_id=backend_id)
        new_status = _query_or_body(request, "status", BackendStatusSerializer)
        backend = services.backend_set_status(backend=backend, status=new_status)
        return Response(BackendSerializer(backend).data)

    @extend_schema(
        operation_id="backends_destroy",
        summary="Remove a backend",
        tags=BACKENDS_TAG,
        parameters=[APP_ID_PARAM, BACKEND_ID_PARAM],
        request=None,
        responses={204: None, **WRITE_ERRORS, 404: NOT_FOUND},
    )
    def delete(self, request: Request, app_id: str, backend_id: str) -> Response:
        backend = selectors.backend_get(app_id=_app_id(app_id), backend_id=backend_id)
        services.backend_delete(backend=backend)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BackendMoveView(SchedulerAPIView):
    @extend_schema(
        operation_id="backends_move",
        summary="Move a backend to another app",
        description=(
            "Give the new app as the query parameter `?new_app_id=...` (the original API) or "
            'as the JSON body `{"new_app_id": "..."}`.'
        ),
        tags=BACKENDS_TAG,
        parameters=[
            APP_ID_PARAM,
            BACKEND_ID_PARAM,
            OpenApiParameter(
                "new_app_id",
                OpenApiTypes.STR,
                pattern=r"^[A-Za-z0-9_.\-]{1,64}$",
                description="The app to move the backend to.",
            ),
        ],
        request=BackendMoveBodySerializer,
        responses={200: BackendSerializer, **WRITE_ERRORS, 404: NOT_FOUND, 409: CONFLICT},
    )
    def patch(self, request: Request, app_id: str, backend_id: str) -> Response:
        backend = selectors.backend_get(app_id=_app_id(app_id), backend_id=backend_id)
        new_app_id = _query_or_body(request, "new_app_id", BackendMoveSerializer)
        backend = services.backend_move(backend=backend, new_app_id=new_app_id)
        return Response(BackendSerializer(backend).data)


class BackendWeightView(SchedulerAPIView):
    @extend_schema(
        operation_id="backends_set_weight",
        summary="Set a backend's weight",
        tags=BACKENDS_TAG,
        parameters=[APP_ID_PARAM, BACKEND_ID_PARAM],
        request=BackendWeightSerializer,
        responses={200: BackendSerializer, **WRITE_ERRORS, 404: NOT_FOUND},
    )
    def patch(self, request: Request, app_id: str, backend_id: str) -> Response:
        backend = selectors.backend_get(app_id=_app_id(app_id), backend_id=backend_id)
        data = _validated(BackendWeightSerializer, request.data)
        backend = services.backend_set_weight(backend=backend, weight=data["weight"])
        return Response(BackendSerializer(backend).data)


class SelectView(SchedulerAPIView):
    @extend_schema(
        operation_id="select",
        summary="Select backends by the app's policy",
        description=(
            "Returns up to `limit` distinct active backends: use the first, fall back to the "
            "rest in order. Advances the app's shared rotation."
        ),
        tags=SELECTION_TAG,
        parameters=[APP_ID_PARAM],
        responses={200: SelectionSerializer, **READ_ERRORS, 503: UNAVAILABLE},
    )
    def get(self, request: Request, app_id: str) -> Response:
        result = services.backend_select(app_id=_app_id(app_id))
        return Response(
            {
                "app_id": result.app_id,
                "policy": result.policy,
                "limit": result.limit,
                "backends": BackendSerializer(result.backends, many=True).data,
            }
        )


class AppPolicyView(SchedulerAPIView):
    @extend_schema(
        operation_id="policy_retrieve",
        summary="Get an app's policy",
        description="An app without a stored policy shows the default.",
        tags=SELECTION_TAG,
        parameters=[APP_ID_PARAM],
        responses={200: PolicySerializer, **READ_ERRORS},
    )
    def get(self, request: Request, app_id: str) -> Response:
        resolved = selectors.policy_get(app_id=_app_id(app_id))
        return Response(PolicySerializer(resolved).data)

    @extend_schema(
        operation_id="policy_update",
        summary="Set an app's policy",
        tags=SELECTION_TAG,
        parameters=[APP_ID_PARAM],
        request=PolicyInputSerializer,
        responses={200: PolicySerializer, **WRITE_ERRORS},
    )
    def put(self, request: Request, app_id: str) -> Response:
        app_id = _app_id(app_id)
        data = _validated(PolicyInputSerializer, request.data)
        services.policy_set(app_id=app_id, policy=data["policy"], limit=data["limit"])
        return Response(PolicySerializer(selectors.policy_get(app_id=app_id)).data)


class PolicyListView(SchedulerAPIView):
    @extend_schema(
        operation_id="policies_list",
        summary="List the available policies",
        tags=SELECTION_TAG,
        responses={200: PolicyInfoSerializer(many=True), 401: UNAUTHENTICATED, 403: FORBIDDEN},
    )
    def get(self, request: Request) -> Response:
        return Response(PolicyInfoSerializer(selectors.policy_list(), many=True).data)


class AllBackendsView(SchedulerAPIView):
    @extend_schema(
        operation_id="backends_list_all",
        summary="List every backend of every app",
        tags=BACKENDS_TAG,
        parameters=[
            OpenApiParameter(
                "app_id",
                OpenApiTypes.STR,
                pattern=r"^[A-Za-z0-9_.\-]{1,64}$",
                description="Only this app.",
            ),
            STATUS_FILTER,
        ],
        responses={200: BackendSerializer(many=True), **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = _validated(
            BackendFilterSerializer, _pick(request.query_params, "app_id", "status")
        )
        backends = selectors.backend_list(
            app_id=filters.get("app_id"), status=filters.get("status")
        )
        return Response(BackendSerializer(backends, many=True).data)


class AppTasksView(SchedulerAPIView):
    @extend_schema(
        operation_id="tasks_create",
        summary="Submit a task to ComfyOne on a backend chosen by the app's policy",
        description=(
            "Selects backends by the app's policy and submits to ComfyOne with `backend` set to "
            "the first one's host; a backend ComfyOne refuses as unknown or down is skipped for "
            "the selection's next one. Follow the task at `/ws/tasks/{task_id}/`."
        ),
        tags=TASKS_TAG,
        parameters=[APP_ID_PARAM],
        request=TaskSubmitSerializer,
        responses={201: TaskSerializer, **WRITE_ERRORS, 502: UPSTREAM, 503: UNAVAILABLE},
    )
    def post(self, request: Request, app_id: str) -> Response:
        app_id = _app_id(app_id)
        data = _validated(TaskSubmitSerializer, request.data)
        inputs = [{"id": item["id"], "params": dict(item["params"])} for item in data["inputs"]]
        task = services.task_submit(
            app_id=app_id,
            workflow_id=data["workflow_id"],
            inputs=inputs,
            free_cache=data["free_cache"],
            free_gpu=data["free_gpu"],
            user=request.user,
        )
        return Response(TaskSerializer(task).data, status=status.HTTP_201_CREATED)


class TaskListView(SchedulerAPIView):
    @extend_schema(
        operation_id="tasks_list",
        summary="List tasks, newest first",
        description="Staff see every task; other users the tasks they submitted.",
        tags=TASKS_TAG,
        parameters=[TaskFilterSerializer],
        responses={200: TaskPageSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = _validated(
            TaskFilterSerializer, _pick(request.query_params, "app_id", "status", "limit", "offset")
        )
        tasks = selectors.task_list(
            user=request.user, app_id=filters.get("app_id"), status=filters.get("status")
        )
        limit, offset = filters["limit"], filters["offset"]
        return Response(
            {
                "count": tasks.count(),
                "limit": limit,
                "offset": offset,
                "results": TaskSerializer(tasks[offset : offset + limit], many=True).data,
            }
        )


TASK_ID_PARAM = OpenApiParameter(
    "task_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="ComfyOne's task id."
)


class TaskDetailView(SchedulerAPIView):
    @extend_schema(
        operation_id="tasks_retrieve",
        summary="Get one task",
        tags=TASKS_TAG,
        parameters=[TASK_ID_PARAM],
        responses={200: TaskSerializer, **READ_ERRORS, 404: TASK_NOT_FOUND},
    )
    def get(self, request: Request, task_id: str) -> Response:
        return Response(TaskSerializer(selectors.task_get(user=request.user, task_id=task_id)).data)


class TaskCancelView(SchedulerAPIView):
    @extend_schema(
        operation_id="tasks_cancel",
        summary="Cancel a queued or running task",
        tags=TASKS_TAG,
        parameters=[TASK_ID_PARAM],
        request=None,
        responses={
            200: TaskSerializer,
            **WRITE_ERRORS,
            404: TASK_NOT_FOUND,
            409: OpenApiResponse(ErrorSerializer, description="The task has already ended."),
            502: UPSTREAM,
            503: OpenApiResponse(ErrorSerializer, description="ComfyOne is not configured."),
        },
    )
    def post(self, request: Request, task_id: str) -> Response:
        task = selectors.task_get(user=request.user, task_id=task_id)
        return Response(TaskSerializer(services.task_cancel(task=task)).data)


class TaskImageView(SchedulerAPIView):
    @extend_schema(
        operation_id="tasks_image",
        summary="A finished task's result image, fetched from ComfyOne",
        description=(
            "Result URLs need the site's ComfyOne key, which never reaches browsers; this route "
            "fetches image `index` (0-based, in the order of `images`) on their behalf."
        ),
        tags=TASKS_TAG,
        parameters=[
            TASK_ID_PARAM,
            OpenApiParameter("index", OpenApiTypes.INT, OpenApiParameter.PATH),
        ],
        responses={
            (200, "image/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The image."),
            **READ_ERRORS,
            404: TASK_NOT_FOUND,
            502: UPSTREAM,
            503: OpenApiResponse(ErrorSerializer, description="ComfyOne is not configured."),
        },
    )
    def get(self, request: Request, task_id: str, index: int) -> HttpResponse:
        task = selectors.task_get(user=request.user, task_id=task_id)
        content = services.task_image_read(task=task, index=index)
        path = urlsplit(task.images[index]).path
        content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        response = HttpResponse(content, content_type=content_type)
        # Results never change; the browser may keep them, shared caches may not.
        response["Cache-Control"] = "private, max-age=86400"
        return response
