"""Page URLs of projects, assets and renders (namespace ``projects``)."""

from django.urls import path

from . import batch_views, views

app_name = "projects"

urlpatterns = [
    path("projects/", views.project_list, name="list"),
    path("projects/new/", views.project_create, name="create"),
    path("projects/<int:pk>/", views.project_detail, name="detail"),
    path("projects/<int:pk>/edit/", views.project_update, name="update"),
    path("projects/<int:pk>/delete/", views.project_delete, name="delete"),
    path("projects/<int:pk>/upload/", views.project_upload, name="upload"),
    path("projects/<int:pk>/render/", views.project_render, name="render"),
    path("batches/", batch_views.batch_list, name="batch_list"),
    path("batches/new/", batch_views.batch_new, name="batch_new"),
    path("batches/<int:pk>/", batch_views.batch_detail, name="batch_detail"),
    path("batches/<int:pk>/cancel/", batch_views.batch_cancel, name="batch_cancel"),
    path("assets/<int:pk>/file/", views.asset_file, name="asset_file"),
    path(
        "assets/<int:pk>/analysis.svg",
        views.asset_analysis_svg,
        name="asset_analysis_svg",
    ),
    path("assets/<int:pk>/delete/", views.asset_delete, name="asset_delete"),
    path("renders/<int:pk>/video/", views.render_file, name="render_file"),
    path(
        "renders/<int:pk>/thumbnail/", views.render_thumbnail, name="render_thumbnail"
    ),
    path("renders/<int:pk>/manifest/", views.render_manifest, name="render_manifest"),
]
