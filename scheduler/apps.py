"""App configuration: registers the system checks of `scheduler.checks`."""

from django.apps import AppConfig


class SchedulerConfig(AppConfig):
    name = "scheduler"
    verbose_name = "ComfyUI scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from scheduler import checks  # noqa: F401  (registers the checks)
