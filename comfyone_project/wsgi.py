"""WSGI entry point, for serving the REST API from a WSGI server such as gunicorn."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "comfyone_project.settings")

application = get_wsgi_application()
