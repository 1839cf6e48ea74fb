"""`manage.py scheduler_admin`: make sure a staff user and its API token exist, and say how
to log in. The password is printed only when the user is created."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create a staff superuser with an API token if missing, and print how to log in."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--url", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, username: str, url: str, **options: Any) -> None:
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        password = None
        if user is None:
            password = secrets.token_urlsafe(12)
            user = user_model.objects.create_superuser(username=username, password=password)
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(f"Admin:    {url}/admin/  (user {username!r})")
        if password:
            self.stdout.write(f"Password: {password}  (shown once; change it in the admin)")
        else:
            self.stdout.write(
                f"Password: set earlier; reset with `python manage.py changepassword {username}`"
            )
        self.stdout.write(f"Token:    {token.key}")
        self.stdout.write(f"API docs: {url}/api/docs/")
        self.stdout.write(f'Try:      curl -H "Authorization: Token {token.key}" {url}/v1/policies')
