"""Request and response shapes of the REST API; input serializers carry every field rule."""

from __future__ import annotations

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


class AppIdSerializer(serializers.Serializer):
    app_id = serializers.CharField(
        max_length=APP_ID_MAX_LENGTH,
        validators=[app_id_validator],
        error_messages=_text_messages("app_id", APP_ID_MAX_LENGTH),
        trim_whitespace=False,
    )


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

    def to_representation(self, instance: Backend) -> dict[str, Any]:
        # Listing 1,000 backends or selecting under load: build the dict directly instead of
        # running eight field objects per backend. The fields above still define the schema.
        return {
            "id": str(instance.id),
            "app_id": instance.app_id,
            "name": instance.name,
            "host": instance.host,
            "weight": instance.weight,
            "status": instance.status,
            "created": _iso(instance.created),
            "updated": _iso(instance.updated),
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


class BackendWeightSerializer(serializers.Serializer):
    weight = StrictIntegerField(
        min_value=WEIGHT_MIN,
        max_value=WEIGHT_MAX,
        error_messages=_range_messages("weight", WEIGHT_MIN, WEIGHT_MAX),
    )


class BackendMoveSerializer(serializers.Serializer):
    new_app_id = StrictCharField(
        max_length=APP_ID_MAX_LENGTH,
        validators=[app_id_validator],
        error_messages=_text_messages("new_app_id", APP_ID_MAX_LENGTH),
        trim_whitespace=False,
    )


class BackendFilterSerializer(serializers.Serializer):
    app_id = serializers.CharField(
        required=False,
        max_length=APP_ID_MAX_LENGTH,
        validators=[app_id_validator],
        error_messages=_text_messages("app_id", APP_ID_MAX_LENGTH),
        trim_whitespace=False,
    )
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
