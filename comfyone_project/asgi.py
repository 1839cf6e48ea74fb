"""ASGI entry point: one port for the REST API, the pages and the WebSockets.

HTTP goes to Django's WSGI handler on a thread pool (a2wsgi): Django's own ASGI request path
costs about 2.5 ms of thread hops per request on these machines against about 0.45 ms through
WSGI (see bench/results/). WebSockets go to Channels. The lifespan protocol starts the
embedded ComfyOne relay when the channel layer is the in-memory one.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "comfyone_project.settings")

# Sets Django up before anything below imports models.
django_asgi_app = get_asgi_application()

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from scheduler.relay import RelayLifespan  # noqa: E402
from scheduler.routing import websocket_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": WSGIMiddleware(get_wsgi_application(), workers=settings.HTTP_THREADS),
        "websocket": websocket_application(),
        "lifespan": RelayLifespan(),
    }
)
