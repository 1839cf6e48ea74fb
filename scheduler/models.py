"""Database models: the registered backends and each app's selection policy and rotation state."""

from __future__ import annotations

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Length

APP_ID_MAX_LENGTH = 64
NAME_MAX_LENGTH = 100
HOST_MAX_LENGTH = 255
WEIGHT_MIN, WEIGHT_MAX = 1, 1_000_000
LIMIT_MIN, LIMIT_MAX = 1, 100

# Lets constraints say `name__length__gte=1` (non-empty) on every database.
models.CharField.register_lookup(Length)

app_id_validator = RegexValidator(
    r"\A[A-Za-z0-9_.-]{1,64}\Z",
    "Use 1-64 characters from A-Z a-z 0-9 _ . -",
    code="invalid_app_id",
)


class BackendStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    DOWN = "down", "Down"


class Backend(models.Model):
    """One ComfyUI instance serving exactly one app."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    app_id = models.CharField(
        "app id", max_length=APP_ID_MAX_LENGTH, validators=[app_id_validator], db_index=False
    )
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    host = models.CharField(
        max_length=HOST_MAX_LENGTH,
        unique=True,
        help_text="A ComfyUI base URL or a hosted instance id; one backend serves one app.",
    )
    weight = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(WEIGHT_MIN), MaxValueValidator(WEIGHT_MAX)]
    )
    status = models.CharField(
        max_length=8, choices=BackendStatus.choices, default=BackendStatus.ACTIVE
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created", "id"]
        verbose_name = "backend"
        verbose_name_plural = "backends"
        indexes = [
            # Selection reads an app's active backends in creation order.
            models.Index(fields=["app_id", "status", "created", "id"], name="backend_app_status"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["app_id", "name"], name="backend_unique_name_per_app"),
            models.CheckConstraint(
                condition=models.Q(weight__gte=WEIGHT_MIN, weight__lte=WEIGHT_MAX),
                name="backend_weight_range",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=BackendStatus.values), name="backend_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(app_id__length__gte=1), name="backend_app_id_not_empty"
            ),
            models.CheckConstraint(
                condition=models.Q(name__length__gte=1), name="backend_name_not_empty"
            ),
            models.CheckConstraint(
                condition=models.Q(host__length__gte=1), name="backend_host_not_empty"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.app_id}/{self.name}"


class AppPolicy(models.Model):
    """How one app's backends are selected, and the rotation state that selection advances.

    `state` belongs to the policy (a round-robin cursor, smooth-weighted counters); it is
    advanced inside the selecting transaction, under a row lock, so every server process
    shares one rotation.
    """

    app_id = models.CharField(
        "app id", max_length=APP_ID_MAX_LENGTH, primary_key=True, validators=[app_id_validator]
    )
    policy = models.CharField(max_length=64)
    limit = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(LIMIT_MIN), MaxValueValidator(LIMIT_MAX)],
        help_text="Empty means the policy's own default limit.",
    )
    state = models.JSONField(default=dict, blank=True, editable=False)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["app_id"]
        verbose_name = "app policy"
        verbose_name_plural = "app policies"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(limit__isnull=True)
                | models.Q(limit__gte=LIMIT_MIN, limit__lte=LIMIT_MAX),
                name="apppolicy_limit_range",
            ),
            models.CheckConstraint(
                condition=models.Q(policy__length__gte=1), name="apppolicy_policy_not_empty"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.app_id}: {self.policy}"
