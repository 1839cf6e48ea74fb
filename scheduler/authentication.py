"""Token authentication with a short per-process cache of key -> user.

Every API request looked its token up with one query; caching the answer for a few seconds
removes it from all but the first request of a key in each process. A deleted token or a
deactivated user is refused at most `TOKEN_CACHE_SECONDS` later (0 turns the cache off).
"""

from __future__ import annotations

import copy
import time
from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from scheduler.conf import scheduler_settings

_MAX_KEYS = 10_000
_cache: dict[str, tuple[float, Any, Any]] = {}


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's `TokenAuthentication`, remembering each key's user for a few seconds."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        ttl = scheduler_settings.TOKEN_CACHE_SECONDS
        if ttl <= 0:
            return super().authenticate_credentials(key)
        now = time.monotonic()
        hit = _cache.get(key)
        if hit is None or now - hit[0] >= ttl:
            user, token = super().authenticate_credentials(key)
            if len(_cache) >= _MAX_KEYS:
                _cache.clear()
            hit = _cache[key] = (now, user, token)
        # A copy per request: code may set attributes on request.user.
        return copy.copy(hit[1]), hit[2]


def token_cache_clear(**kwargs: Any) -> None:
    """Forget every cached key (in this process) when a token or a user changes."""
    _cache.clear()


post_delete.connect(token_cache_clear, sender=Token, dispatch_uid="scheduler-token-cache")
post_save.connect(
    token_cache_clear, sender=settings.AUTH_USER_MODEL, dispatch_uid="scheduler-user-cache"
)
