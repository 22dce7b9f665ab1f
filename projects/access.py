"""Owner scoping of projects, assets, renders and scenes: one helper per model.

Every view, API endpoint and download goes through these, so another user's
object is a 404 (never a 403, which would confirm that the id exists).
"""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from .models import Asset, Project, ProjectQuerySet, Render, Scene

User = AbstractBaseUser | AnonymousUser


def projects_for_user(user: User) -> ProjectQuerySet:
    if not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.for_user(user)


def assets_for_user(user: User) -> QuerySet[Asset]:
    if not user.is_authenticated:
        return Asset.objects.none()
    # Through the project, like renders: Asset.owner is a denormalized copy
    # that could disagree with the project's owner, which is what counts.
    return Asset.objects.filter(project__owner=user)


def renders_for_user(user: User) -> QuerySet[Render]:
    if not user.is_authenticated:
        return Render.objects.none()
    # A render has no owner column; it belongs to whoever owns its project.
    return Render.objects.filter(project__owner=user)


def scenes_for_user(user: User) -> QuerySet[Scene]:
    if not user.is_authenticated:
        return Scene.objects.none()
    # A scene belongs to whoever owns its project.
    return Scene.objects.filter(project__owner=user)


def get_project_for_user(request: HttpRequest, pk: int) -> Project:
    return get_object_or_404(projects_for_user(request.user), pk=pk)


def get_asset_for_user(request: HttpRequest, pk: int) -> Asset:
    return get_object_or_404(
        assets_for_user(request.user).select_related("project"), pk=pk
    )


def get_render_for_user(request: HttpRequest, pk: int) -> Render:
    return get_object_or_404(
        renders_for_user(request.user).select_related("project", "job"), pk=pk
    )


def get_scene_for_user(request: HttpRequest, pk: int) -> Scene:
    return get_object_or_404(
        scenes_for_user(request.user).select_related("project", "job", "image"),
        pk=pk,
    )
