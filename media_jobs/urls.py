from django.urls import path

from . import views

app_name = "jobs"

urlpatterns = [
    path("<int:pk>/", views.job_detail, name="detail"),
    path("<int:pk>/progress/", views.job_progress, name="progress"),
    path("<int:pk>/cancel/", views.job_cancel, name="cancel"),
    path("<int:pk>/retry/", views.job_retry, name="retry"),
    path(
        "<int:pk>/scenes/<int:index>/rerender/",
        views.scene_rerender,
        name="scene_rerender",
    ),
    path("scenes/<int:pk>/preview/", views.scene_preview, name="scene_preview"),
]
