"""HTML pages: the live dashboard (login required; the admin login works)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from scheduler import selectors
from scheduler.conf import scheduler_settings
from scheduler.serializers import task_to_dict


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "scheduler/dashboard.html",
        {
            "apps": selectors.dashboard_apps(),
            "tasks": [task_to_dict(t) for t in selectors.task_snapshot(user=request.user)],
            "websocket_url": scheduler_settings.DASHBOARD_WEBSOCKET_URL,
            "can_cancel": request.user.is_staff,
        },
    )
