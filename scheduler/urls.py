"""URL routes of the scheduler API; a site may mount them under any prefix."""

from django.urls import path

from scheduler import health, pages, views

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
    path("v1/<str:app_id>/tasks", views.AppTasksView.as_view(), name="tasks-submit"),
    path("v1/tasks", views.TaskListView.as_view(), name="tasks"),
    path("v1/tasks/<str:task_id>", views.TaskDetailView.as_view(), name="task-detail"),
    path("v1/tasks/<str:task_id>/cancel", views.TaskCancelView.as_view(), name="task-cancel"),
    path(
        "v1/tasks/<str:task_id>/images/<int:index>",
        views.TaskImageView.as_view(),
        name="task-image",
    ),
    path("dashboard/", pages.dashboard, name="dashboard"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]
