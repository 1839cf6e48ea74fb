"""Database models: backends, each app's policy and rotation state, tasks, and the relay lease."""

from __future__ import annotations

import re
import uuid

from django.conf import settings
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

APP_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
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


class TaskStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATUSES = (TaskStatus.FINISHED, TaskStatus.FAILED, TaskStatus.CANCELLED)
OPEN_STATUSES = (TaskStatus.PENDING, TaskStatus.RUNNING)


class Task(models.Model):
    """A ComfyOne task submitted through the scheduler, kept current by the relay."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    task_id = models.CharField("ComfyOne task id", max_length=128, unique=True)
    app_id = models.CharField("app id", max_length=APP_ID_MAX_LENGTH)
    backend = models.ForeignKey(
        Backend, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks"
    )
    # The host the task was pinned to, kept when the backend row is later removed.
    backend_host = models.CharField(max_length=HOST_MAX_LENGTH)
    workflow_id = models.CharField(max_length=128)
    inputs = models.JSONField(default=list, blank=True)
    free_cache = models.BooleanField(null=True, blank=True)
    free_gpu = models.BooleanField(null=True, blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.PENDING)
    queue_position = models.PositiveIntegerField(null=True, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    error_message = models.TextField(blank=True)
    error_node = models.CharField(max_length=128, blank=True)
    images = models.JSONField(default=list, blank=True)
    cost_time = models.PositiveBigIntegerField("cost time (ms)", null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = "task"
        verbose_name_plural = "tasks"
        indexes = [
            # The dashboard and GET /v1/tasks: newest first, optionally by app and status.
            models.Index(fields=["-created"], name="task_created"),
            models.Index(fields=["app_id", "status", "-created"], name="task_app_status"),
            models.Index(fields=["status", "-created"], name="task_status"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=TaskStatus.values), name="task_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(progress__gte=0, progress__lte=100), name="task_progress_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Lease(models.Model):
    """A named lease held by one process at a time (the relay), renewed before it expires."""

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=128)
    expires = models.DateTimeField()

    class Meta:
        verbose_name = "lease"
        verbose_name_plural = "leases"

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder} until {self.expires:%H:%M:%S}"
