"""Request and response shapes of the REST API; input serializers carry every field rule."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rest_framework import serializers

from scheduler.models import (
    APP_ID_MAX_LENGTH,
    HOST_MAX_LENGTH,
    LIMIT_MAX,
    LIMIT_MIN,
    NAME_MAX_LENGTH,
    WEIGHT_MAX,
    WEIGHT_MIN,
    Backend,
    BackendStatus,
    Task,
    TaskStatus,
    app_id_validator,
)
from scheduler.policies import registry

STATUS_CHOICES_TEXT = ", ".join(BackendStatus.values)


class StrictIntegerField(serializers.IntegerField):
    """An integer that must arrive as a JSON number: no strings, booleans or fractions."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, float) and not data.is_integer():
            self.fail("invalid")
        return super().to_internal_value(int(data))


class StrictCharField(serializers.CharField):
    """A string that must arrive as a JSON string: DRF would turn 5 into "5"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def _range_messages(field: str, low: int, high: int) -> dict[str, str]:
    message = f"{field} must be a whole number from {low} to {high}."
    return {"invalid": message, "min_value": message, "max_value": message}


def _choice_messages(field: str, allowed: str) -> dict[str, str]:
    return {"invalid_choice": f'"{{input}}" is not a valid {field}; use one of: {allowed}.'}


def _text_messages(field: str, max_length: int) -> dict[str, str]:
    message = f"{field} must be 1 to {max_length} characters."
    return {"blank": message, "max_length": message, "invalid": f"{field} must be a string."}


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def app_id_field(name: str, *, required: bool = True) -> serializers.CharField:
    """An app id as the URL, a query or a body gives it: 1-64 of A-Z a-z 0-9 _ . -"""
    return StrictCharField(
        required=required,
        max_length=APP_ID_MAX_LENGTH,
        validators=[app_id_validator],
        error_messages=_text_messages(name, APP_ID_MAX_LENGTH),
        trim_whitespace=False,
    )


class AppIdSerializer(serializers.Serializer):
    app_id = app_id_field("app_id")


class BackendSerializer(serializers.Serializer):
    """A backend as the API shows it."""

    id = serializers.UUIDField(read_only=True)
    app_id = serializers.CharField(read_only=True)
    name = serializers.CharField(read_only=True)
    host = serializers.CharField(read_only=True)
    weight = serializers.IntegerField(read_only=True, min_value=WEIGHT_MIN, max_value=WEIGHT_MAX)
    status = serializers.ChoiceField(choices=BackendStatus.choices, read_only=True)
    created = serializers.DateTimeField(read_only=True)
    updated = serializers.DateTimeField(read_only=True)

    def to_representation(self, instance: Backend | Mapping[str, Any]) -> dict[str, Any]:
        # Listing 1,000 backends or selecting under load: build the dict directly instead of
        # running eight field objects per backend. The fields above still define the schema.
        # Lists come as plain rows (`QuerySet.values()`), which skips building models.
        row = instance if isinstance(instance, Mapping) else instance.__dict__
        return {
            "id": str(row["id"]),
            "app_id": row["app_id"],
            "name": row["name"],
            "host": row["host"],
            "weight": row["weight"],
            "status": row["status"],
            "created": _iso(row["created"]),
            "updated": _iso(row["updated"]),
        }


class BackendCreateSerializer(serializers.Serializer):
    name = StrictCharField(
        max_length=NAME_MAX_LENGTH, error_messages=_text_messages("name", NAME_MAX_LENGTH)
    )
    host = StrictCharField(
        max_length=HOST_MAX_LENGTH, error_messages=_text_messages("host", HOST_MAX_LENGTH)
    )
    weight = StrictIntegerField(
        min_value=WEIGHT_MIN,
        max_value=WEIGHT_MAX,
        default=1,
        error_messages=_range_messages("weight", WEIGHT_MIN, WEIGHT_MAX),
    )
    status = serializers.ChoiceField(
        choices=BackendStatus.choices,
        default=BackendStatus.ACTIVE,
        error_messages=_choice_messages("status", STATUS_CHOICES_TEXT),
    )


class BackendStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=BackendStatus.choices,
        error_messages=_choice_messages("status", STATUS_CHOICES_TEXT),
    )


class BackendStatusBodySerializer(serializers.Serializer):
    """The status route's body for the docs: optional, since `?status=` may carry it."""

    status = serializers.ChoiceField(choices=BackendStatus.choices, required=False)


class BackendWeightSerializer(serializers.Serializer):
    weight = StrictIntegerField(
        min_value=WEIGHT_MIN,
        max_value=WEIGHT_MAX,
        error_messages=_range_messages("weight", WEIGHT_MIN, WEIGHT_MAX),
    )


class BackendMoveSerializer(serializers.Serializer):
    new_app_id = app_id_field("new_app_id")


class BackendMoveBodySerializer(serializers.Serializer):
    """The move route's body for the docs: optional, since `?new_app_id=` may carry it."""

    new_app_id = serializers.CharField(required=False, max_length=APP_ID_MAX_LENGTH)


class BackendFilterSerializer(serializers.Serializer):
    app_id = app_id_field("app_id", required=False)
    status = serializers.ChoiceField(
        required=False,
        choices=BackendStatus.choices,
        error_messages=_choice_messages("status", STATUS_CHOICES_TEXT),
    )


class PolicySerializer(serializers.Serializer):
    app_id = serializers.CharField(read_only=True)
    policy = serializers.CharField(read_only=True)
    limit = serializers.IntegerField(read_only=True, min_value=LIMIT_MIN, max_value=LIMIT_MAX)


class PolicyInputSerializer(serializers.Serializer):
    policy = StrictCharField(
        help_text="A name from GET /v1/policies.", error_messages=_text_messages("policy", 64)
    )
    limit = StrictIntegerField(
        allow_null=True,
        default=None,
        min_value=LIMIT_MIN,
        max_value=LIMIT_MAX,
        help_text="Omit or null for the policy's default limit.",
        error_messages=_range_messages("limit", LIMIT_MIN, LIMIT_MAX),
    )

    def validate_policy(self, value: str) -> str:
        names = registry.names()
        if value not in names:
            raise serializers.ValidationError(
                f'"{value}" is not a known policy; use one of: {", ".join(names)}.'
            )
        return value


class PolicyInfoSerializer(serializers.Serializer):
    name = serializers.CharField()
    default_limit = serializers.IntegerField()
    description = serializers.CharField()


class SelectionSerializer(serializers.Serializer):
    app_id = serializers.CharField()
    policy = serializers.CharField()
    limit = serializers.IntegerField()
    backends = BackendSerializer(many=True, help_text="The first is the one to use.")


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What is wrong, in words.")
    code = serializers.CharField(help_text="A machine-readable code.")


# --- tasks ----------------------------------------------------------------------------------


def task_to_dict(task: Task) -> dict[str, Any]:
    """A task's full current state: the REST body and every WebSocket frame."""
    return {
        "id": str(task.id),
        "task_id": task.task_id,
        "app_id": task.app_id,
        "backend_id": str(task.backend_id) if task.backend_id else None,
        "backend_host": task.backend_host,
        "workflow_id": task.workflow_id,
        "inputs": task.inputs,
        "status": task.status,
        "queue_position": task.queue_position,
        "progress": task.progress,
        "error_message": task.error_message,
        "error_node": task.error_node,
        "images": task.images,
        "cost_time": task.cost_time,
        "created": _iso(task.created),
        "started": _iso(task.started) if task.started else None,
        "finished": _iso(task.finished) if task.finished else None,
        "updated": _iso(task.updated),
    }


class TaskSerializer(serializers.Serializer):
    """A task as the API and the WebSocket frames show it."""

    id = serializers.UUIDField(read_only=True)
    task_id = serializers.CharField(read_only=True, help_text="ComfyOne's task id.")
    app_id = serializers.CharField(read_only=True)
    backend_id = serializers.UUIDField(read_only=True, allow_null=True)
    backend_host = serializers.CharField(read_only=True)
    workflow_id = serializers.CharField(read_only=True)
    inputs = serializers.ListField(child=serializers.DictField(), read_only=True)
    status = serializers.ChoiceField(choices=TaskStatus.choices, read_only=True)
    queue_position = serializers.IntegerField(read_only=True, allow_null=True)
    progress = serializers.IntegerField(read_only=True, min_value=0, max_value=100)
    error_message = serializers.CharField(read_only=True)
    error_node = serializers.CharField(read_only=True)
    images = serializers.ListField(child=serializers.URLField(), read_only=True)
    cost_time = serializers.IntegerField(read_only=True, allow_null=True, help_text="ms")
    created = serializers.DateTimeField(read_only=True)
    started = serializers.DateTimeField(read_only=True, allow_null=True)
    finished = serializers.DateTimeField(read_only=True, allow_null=True)
    updated = serializers.DateTimeField(read_only=True)

    def to_representation(self, instance: Task) -> dict[str, Any]:
        return task_to_dict(instance)


class TaskInputSerializer(serializers.Serializer):
    """One node's overrides: `{"id": "5", "params": {"width": 1024}}`."""

    id = StrictCharField(max_length=128, error_messages=_text_messages("inputs[].id", 128))
    params = serializers.DictField(
        help_text="Each key overwrites that input of the node.", allow_empty=True
    )


class TaskSubmitSerializer(serializers.Serializer):
    workflow_id = StrictCharField(max_length=128, error_messages=_text_messages("workflow_id", 128))
    inputs = TaskInputSerializer(many=True, required=False, default=list)
    free_cache = serializers.BooleanField(required=False, allow_null=True, default=None)
    free_gpu = serializers.BooleanField(required=False, allow_null=True, default=None)

    def to_internal_value(self, data: Any) -> Any:
        # The flat form {"id": "8", "width": 1024} is accepted, as ComfyOne's own docs show it.
        if isinstance(data, dict) and isinstance(data.get("inputs"), list):
            data = {
                **data,
                "inputs": [
                    {"id": item.get("id"), "params": {k: v for k, v in item.items() if k != "id"}}
                    if isinstance(item, dict) and "params" not in item
                    else item
                    for item in data["inputs"]
                ],
            }
        return super().to_internal_value(data)


class TaskFilterSerializer(serializers.Serializer):
    app_id = app_id_field("app_id", required=False)
    status = serializers.ChoiceField(
        required=False,
        choices=TaskStatus.choices,
        error_messages=_choice_messages("status", ", ".join(TaskStatus.values)),
    )
    limit = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=100,
        default=20,
        error_messages=_range_messages("limit", 1, 100),
    )
    offset = serializers.IntegerField(
        required=False,
        min_value=0,
        default=0,
        error_messages={
            "invalid": "offset must be a whole number ≥ 0.",
            "min_value": "offset must be a whole number ≥ 0.",
        },
    )


class TaskPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    results = TaskSerializer(many=True)


class UpstreamErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()
    upstream_code = serializers.IntegerField(allow_null=True)
    upstream_msg = serializers.CharField(allow_blank=True)
