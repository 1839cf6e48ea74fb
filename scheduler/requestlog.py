"""A structured log line per HTTP request: method, path, status, duration, user."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

logger = logging.getLogger("scheduler.requests")


class RequestLogMiddleware:
    """Logs `{"method", "path", "status", "ms", "user"}` as JSON at INFO after each request.

    The query string is left out on purpose: it may carry secrets a client put there.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        response = self.get_response(request)
        if logger.isEnabledFor(logging.INFO):
            user = getattr(request, "user", None)
            logger.info(
                json.dumps(
                    {
                        "method": request.method,
                        "path": request.path,
                        "status": response.status_code,
                        "ms": round((time.perf_counter() - start) * 1000, 2),
                        "user": user.get_username() if user and user.is_authenticated else None,
                    },
                    separators=(",", ":"),
                )
            )
        return response
