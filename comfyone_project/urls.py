"""URL routes of the ComfyOne site: the scheduler API at the root, the admin and API docs."""

from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

urlpatterns = [
    # Browsers ask for it on every page; answer "nothing here" without a 404 in the logs.
    path("favicon.ico", lambda request: HttpResponse(status=204)),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(
            url_name="schema", template_name="comfyone_project/redoc.html"
        ),
        name="redoc",
    ),
    path("", include("scheduler.urls")),
]
