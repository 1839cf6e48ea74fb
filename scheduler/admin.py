"""Django admin for backends and app policies; every change goes through `scheduler.services`."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from scheduler import services
from scheduler.models import AppPolicy, Backend, BackendStatus, Task
from scheduler.policies import registry

BACKEND_FIELDS = ("app_id", "name", "host", "weight", "status")


@admin.register(Backend)
class BackendAdmin(admin.ModelAdmin):
    list_display = ("name", "app_id", "host", "weight", "status", "updated")
    list_editable = ("weight", "status")
    list_filter = ("app_id", "status")
    search_fields = ("name", "host", "app_id")
    readonly_fields = ("id", "created", "updated")
    fields = ("id", *BACKEND_FIELDS, "created", "updated")
    actions = ("mark_active", "mark_down")

    def save_model(self, request: HttpRequest, obj: Backend, form: Any, change: bool) -> None:
        if not change:
            services.backend_register(**{name: getattr(obj, name) for name in BACKEND_FIELDS})
            return
        # `obj` already holds the form's values; the service compares against the stored row.
        stored = Backend.objects.get(pk=obj.pk)
        changes = {name: getattr(obj, name) for name in form.changed_data if name in BACKEND_FIELDS}
        services.backend_update(backend=stored, **changes)

    def delete_model(self, request: HttpRequest, obj: Backend) -> None:
        services.backend_delete(backend=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Backend]) -> None:
        for backend in queryset:
            services.backend_delete(backend=backend)

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Backend], status: str) -> None:
        for backend in queryset:
            services.backend_set_status(backend=backend, status=status)
        self.message_user(request, f"Marked {len(queryset)} backend(s) {status}.", messages.SUCCESS)

    @admin.action(description="Mark selected backends active")
    def mark_active(self, request: HttpRequest, queryset: QuerySet[Backend]) -> None:
        self._set_status(request, queryset, BackendStatus.ACTIVE)

    @admin.action(description="Mark selected backends down")
    def mark_down(self, request: HttpRequest, queryset: QuerySet[Backend]) -> None:
        self._set_status(request, queryset, BackendStatus.DOWN)


class AppPolicyForm(forms.ModelForm):
    policy = forms.ChoiceField(choices=())

    class Meta:
        model = AppPolicy
        fields = ("app_id", "policy", "limit")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read the registry per form, so policies added in settings appear.
        self.fields["policy"].choices = [(p.name, p.name) for p in registry.all()]


@admin.register(AppPolicy)
class AppPolicyAdmin(admin.ModelAdmin):
    form = AppPolicyForm
    list_display = ("app_id", "policy", "limit", "updated")
    list_filter = ("policy",)
    search_fields = ("app_id",)

    def get_readonly_fields(self, request: HttpRequest, obj: AppPolicy | None = None) -> Any:
        # The app id is the key: changing it would make a new row, not move this one.
        return ("app_id",) if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: AppPolicy, form: Any, change: bool) -> None:
        services.policy_set(app_id=obj.app_id, policy=obj.policy, limit=obj.limit)


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    """Tasks are written by the submit route and the relay; the admin only shows them."""

    list_display = ("task_id", "app_id", "status", "progress", "backend_host", "created")
    list_filter = ("status", "app_id")
    search_fields = ("task_id", "workflow_id", "backend_host")
    date_hierarchy = "created"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        return False
