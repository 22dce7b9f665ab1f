"""Page URLs of projects, assets, renders, batches and the review queue
(namespace ``projects``)."""

from django.urls import path

from . import batch_views, review_views, storyboard_views, views

app_name = "projects"

urlpatterns = [
    path("projects/", views.project_list, name="list"),
    path("projects/new/", views.project_create, name="create"),
    path("projects/quick/", storyboard_views.quick, name="quick"),
    path("projects/<int:pk>/", views.project_detail, name="detail"),
    path("projects/<int:pk>/edit/", views.project_update, name="update"),
    path("projects/<int:pk>/delete/", views.project_delete, name="delete"),
    path("projects/<int:pk>/upload/", views.project_upload, name="upload"),
    path("projects/<int:pk>/render/", views.project_render, name="render"),
    path("projects/<int:pk>/character/", views.project_character, name="character"),
    path(
        "projects/<int:pk>/storyboard/",
        storyboard_views.storyboard,
        name="storyboard",
    ),
    path(
        "projects/<int:pk>/storyboard/plan/",
        storyboard_views.storyboard_plan,
        name="storyboard_plan",
    ),
    path(
        "projects/<int:pk>/storyboard/<int:index>/",
        storyboard_views.shot_edit,
        name="shot_edit",
    ),
    path("reviews/", review_views.review_queue_page, name="review_queue"),
    path(
        "reviews/<int:pk>/approve/", review_views.review_approve, name="review_approve"
    ),
    path(
        "reviews/<int:pk>/regenerate/",
        review_views.review_regenerate,
        name="review_regenerate",
    ),
    path(
        "reviews/<int:pk>/replace/", review_views.review_replace, name="review_replace"
    ),
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
