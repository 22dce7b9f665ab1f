"""Page URLs of characters and their reference photos (namespace ``characters``)."""

from django.urls import path

from . import views

app_name = "characters"

urlpatterns = [
    path("characters/", views.character_list, name="list"),
    path("characters/new/", views.character_create, name="create"),
    path("characters/<int:pk>/", views.character_detail, name="detail"),
    path(
        "characters/<int:pk>/references/",
        views.character_references,
        name="references",
    ),
    path("characters/<int:pk>/edit/", views.character_update, name="update"),
    path("characters/<int:pk>/photos/", views.reference_add, name="reference_add"),
    path("characters/<int:pk>/delete/", views.character_delete, name="delete"),
    path(
        "characters/photos/<int:pk>/file/",
        views.reference_photo,
        name="reference_photo",
    ),
    path(
        "characters/photos/<int:pk>/face.jpg",
        views.reference_crop,
        name="reference_crop",
    ),
    path(
        "characters/photos/<int:pk>/remove/",
        views.reference_remove,
        name="reference_remove",
    ),
]
