"""WebSocket authentication and origin checks.

Browsers authenticate with the session cookie; other clients with `Authorization: Token`.
A handshake that carries an `Origin` must come from an allowed host (this is what stops
another site's page from riding a visitor's cookie). A handshake without one cannot come
from a browser, so it is allowed only with a token, never with a cookie.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import is_same_domain
from rest_framework.authtoken.models import Token


@database_sync_to_async
def _user_for_token(key: str) -> Any:
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


class TokenAuthMiddleware(BaseMiddleware):
    """Sets `scope["user"]` from an `Authorization: Token <key>` header when one is sent."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        header = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin-1")
        scheme, _, key = header.partition(" ")
        if scheme.lower() == "token" and key.strip():
            user = await _user_for_token(key.strip())
            if user is None:
                return await WebsocketDenier()(scope, receive, send)
            scope = {**scope, "user": user, "auth_method": "token"}
        return await super().__call__(scope, receive, send)


class OriginCheckMiddleware(BaseMiddleware):
    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        origin = dict(scope.get("headers", [])).get(b"origin")
        if origin is None:
            allowed = scope.get("auth_method") == "token"
        else:
            allowed = _origin_allowed(origin.decode("latin-1"))
        if not allowed:
            return await WebsocketDenier()(scope, receive, send)
        return await super().__call__(scope, receive, send)


def _origin_allowed(origin: str) -> bool:
    host = urlparse(origin).hostname
    if not host:
        return False
    patterns = settings.ALLOWED_HOSTS or (
        ["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else []
    )
    return any(pattern == "*" or is_same_domain(host, pattern.strip("[]")) for pattern in patterns)


def websocket_auth_stack(inner: Any) -> Any:
    """Session auth, then token auth (which wins when both are present), then origin."""
    return AuthMiddlewareStack(TokenAuthMiddleware(OriginCheckMiddleware(inner)))
