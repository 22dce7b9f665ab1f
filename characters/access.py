"""Owner scoping of characters and their reference photos: one helper per model.

Characters are biometric data: every page, download and API endpoint goes
through these, so another user's character (or photo, or face crop) is a 404,
never a 403 that would confirm the id exists.
"""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from .models import Character, CharacterQuerySet, ReferenceImage

User = AbstractBaseUser | AnonymousUser


def characters_for_user(user: User) -> CharacterQuerySet:
    if not user.is_authenticated:
        return Character.objects.none()
    return Character.objects.for_user(user)


def references_for_user(user: User) -> QuerySet[ReferenceImage]:
    if not user.is_authenticated:
        return ReferenceImage.objects.none()
    # A reference has no owner column; it belongs to its character's owner.
    return ReferenceImage.objects.filter(character__owner=user)


def get_character_for_user(request: HttpRequest, pk: int) -> Character:
    return get_object_or_404(characters_for_user(request.user), pk=pk)


def get_reference_for_user(request: HttpRequest, pk: int) -> ReferenceImage:
    return get_object_or_404(
        references_for_user(request.user).select_related("character"), pk=pk
    )
