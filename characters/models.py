"""Characters: a person who appears in a creator's videos, known by reference
photos and the identity made from their faces.

The embeddings here are biometric data. They belong to the character's owner
alone: every queryset is scoped to the owner, the admin does not show them,
the API never returns them, they are never logged, and they go (with the
photos and face crops) when the character or the reference goes.
"""

from __future__ import annotations

import hashlib
import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from workers.faces.identity import vector_from_bytes

MAX_REFERENCES = 14  # photos in a character's identity (rejected ones aside)
# Rejected photos stay to show why; this bounds all of them together.
MAX_REFERENCE_ROWS = 40


class CharacterQuerySet(models.QuerySet["Character"]):
    def for_user(self, user: object) -> CharacterQuerySet:
        return self.filter(owner=user)


class Character(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="characters"
    )
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    # The face provider whose embeddings make the identity; scenes are
    # checked with the same provider.
    provider = models.CharField(max_length=40)
    provider_version = models.CharField(max_length=60, blank=True)
    threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Same-person similarity; empty: the face provider's own.",
    )
    # The normalised mean of the accepted references' embeddings (float32).
    identity = models.BinaryField(null=True, blank=True, editable=False)
    # Changes whenever the identity does: part of every consistency check's
    # fingerprint, so a check is made again after the references change.
    identity_key = models.CharField(max_length=64, blank=True)
    reference_count = models.PositiveSmallIntegerField(default=0)
    spread = models.FloatField(null=True, blank=True)
    spread_max = models.FloatField(null=True, blank=True)
    # Found in a project's photos by Quick mode rather than made by hand.
    auto_created = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CharacterQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_ready(self) -> bool:
        return bool(self.identity)

    def identity_vector(self):
        if not self.identity:
            raise ValueError(f"{self.name} has no accepted reference photo yet")
        return vector_from_bytes(bytes(self.identity))

    def set_identity(self, data: bytes | None, *, count: int = 0) -> None:
        self.identity = data
        self.reference_count = count
        self.identity_key = (
            hashlib.sha256(data + self.provider_version.encode()).hexdigest()
            if data
            else ""
        )


def reference_upload_to(instance: ReferenceImage, filename: str) -> str:
    # The user's file name is never part of the stored path.
    owner = instance.character.owner_id
    return f"characters/{owner}/{uuid.uuid4().hex}{instance.extension}"


class ReferenceImage(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Being checked"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    character = models.ForeignKey(
        Character, on_delete=models.CASCADE, related_name="references"
    )
    file = models.FileField(upload_to=reference_upload_to, max_length=300)
    # The aligned face crop (ArcFace template, 224 px), for identity
    # conditioning of generators.
    crop = models.CharField(max_length=300, blank=True)
    original_name = models.CharField(max_length=255)
    mime = models.CharField(max_length=100)
    extension = models.CharField(max_length=10)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING
    )
    # [{"code", "level" ("reject" | "warn"), "message"}], rejections first.
    notes = models.JSONField(default=list, blank=True)
    quality = models.JSONField(default=dict, blank=True)
    faces_found = models.PositiveSmallIntegerField(null=True, blank=True)
    # The face used, as fractions of the photo (x0, y0, x1, y1).
    face_box = models.JSONField(null=True, blank=True)
    # Quick mode: the face (fractions) that grouping the photos picked.
    hint_box = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["character", "sha256"], name="reference_unique_per_character"
            )
        ]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.status})"

    @property
    def reasons(self) -> list[str]:
        return [n["message"] for n in self.notes if n.get("level") == "reject"]

    @property
    def warnings(self) -> list[str]:
        return [n["message"] for n in self.notes if n.get("level") == "warn"]


class FaceEmbedding(models.Model):
    """The identity embedding of one reference photo's face."""

    reference = models.ForeignKey(
        ReferenceImage, on_delete=models.CASCADE, related_name="embeddings"
    )
    provider = models.CharField(max_length=40)
    provider_version = models.CharField(max_length=60)
    size = models.PositiveSmallIntegerField()
    vector = models.BinaryField(editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["reference", "provider_version"],
                name="embedding_unique_per_provider",
            )
        ]

    def __str__(self) -> str:
        # Never the vector: this may end up in a log line.
        return f"{self.provider} embedding of reference {self.reference_id}"
