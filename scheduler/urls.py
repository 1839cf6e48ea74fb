"""URL routes of the scheduler API; a site may mount them under any prefix."""

from django.urls import path

from scheduler import views

app_name = "scheduler"

urlpatterns = [
    path("v1/backends", views.AllBackendsView.as_view(), name="backends-all"),
    path("v1/policies", views.PolicyListView.as_view(), name="policies"),
    path("v1/<str:app_id>/backends", views.AppBackendsView.as_view(), name="backends"),
    path(
        "v1/<str:app_id>/backends/<str:backend_id>",
        views.BackendDetailView.as_view(),
        name="backend-detail",
    ),
    path(
        "v1/<str:app_id>/backends/<str:backend_id>/app",
        views.BackendMoveView.as_view(),
        name="backend-move",
    ),
    path(
        "v1/<str:app_id>/backends/<str:backend_id>/weight",
        views.BackendWeightView.as_view(),
        name="backend-weight",
    ),
    path("v1/<str:app_id>/select", views.SelectView.as_view(), name="select"),
    path("v1/<str:app_id>/policy", views.AppPolicyView.as_view(), name="policy"),
]
