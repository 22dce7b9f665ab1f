"""Registering a character: reference photos in, checked one by one, and the
identity made from the faces that pass.

A reference is stored first (validated by content, under a server-made name)
and checked later by the registration task, which runs the face provider:
one face (or the largest, with a note), its size, sharpness, pose and
lighting; a reference that passes gets an embedding. The identity is then
rebuilt from every accepted reference, and a reference whose face is not the
same person as the rest is turned away ("different_person"), which is looked
at again whenever the references change.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from media_jobs.files import (
    check_upload,
    delete_file,
    local_file,
    save_with_file,
    scratch_dir,
    spooled,
    store_file,
)
from media_jobs.heartbeat import MODEL_CACHE
from workers.faces.base import FaceProvider, align
from workers.faces.identity import build_identity, group_people, vector_from_bytes
from workers.faces.images import load_rgb, save_rgb
from workers.faces.providers import (
    INSIGHTFACE_KEY,
    PROVIDERS,
    make_provider,
    provider_class,
)
from workers.faces.quality import REJECT
from workers.faces.references import check_reference
from workers.validation import UploadRejected, clean_display_name

from .models import (
    MAX_REFERENCE_ROWS,
    MAX_REFERENCES,
    Character,
    FaceEmbedding,
    ReferenceImage,
)

logger = logging.getLogger(__name__)

CROP_SIZE = 224
DIFFERENT_PERSON = "different_person"

Progress = Callable[[float, str], None]


class ReferenceRefused(ValueError):
    """A photo cannot be added to the character; the message says why."""


def face_provider(name: str | None = None) -> FaceProvider:
    """The provider ``name`` (the studio's default when None) with this
    host's model store, kept loaded by this process's model cache (which a
    worker's heartbeat reports)."""
    chosen = name or settings.STUDIO_FACE_PROVIDER
    if chosen not in PROVIDERS:
        raise ValueError(
            f"unknown face provider {chosen!r}; choose one of: {', '.join(PROVIDERS)}"
        )
    store = Path(settings.STUDIO_MODEL_STORE)
    key = "dlib" if chosen == "dlib" else f"{INSIGHTFACE_KEY}:{store}"
    provider = MODEL_CACHE.get(
        key, lambda _plan: make_provider(chosen, store), need_bytes=0
    )
    return cast(FaceProvider, provider)


def provider_threshold(name: str) -> float:
    return float(provider_class(name).threshold)


def threshold_of(character: Character) -> float:
    """The same-person similarity that scenes and references are held to."""
    if character.threshold is not None:
        return character.threshold
    return provider_threshold(character.provider)


def create_character(owner, name: str, **fields) -> Character:
    provider = fields.pop("provider", None) or settings.STUDIO_FACE_PROVIDER
    version = str(provider_class(provider).version)
    return Character.objects.create(
        owner=owner, name=name, provider=provider, provider_version=version, **fields
    )


# --- adding and removing references ----------------------------------------


def _check_room(character: Character) -> None:
    live = character.references.exclude(status=ReferenceImage.Status.REJECTED)
    if live.count() >= MAX_REFERENCES:
        raise ReferenceRefused(
            f"{character.name} already has {MAX_REFERENCES} reference photos;"
            " remove one before adding another"
        )
    if character.references.count() >= MAX_REFERENCE_ROWS:
        raise ReferenceRefused("remove some of the rejected photos before adding more")


def add_reference(
    character: Character,
    path: Path,
    original_name: str,
    *,
    hint_box: list[float] | None = None,
) -> ReferenceImage:
    """Validate the photo at ``path`` and store it as a reference waiting to
    be checked. Raises ``ReferenceRefused`` (nothing stored) when it is not
    a photo, is already a reference, or the character is full."""
    name = clean_display_name(original_name)
    try:
        checked = check_upload(path, name, "image")
    except UploadRejected as exc:
        raise ReferenceRefused(str(exc)) from exc
    with transaction.atomic():
        Character.objects.select_for_update().filter(pk=character.pk).first()
        _check_room(character)
        if character.references.filter(sha256=checked.sha256).exists():
            raise ReferenceRefused(f"{name}: this photo is already a reference")
        reference = ReferenceImage(
            character=character,
            original_name=name,
            mime=checked.mime,
            extension=checked.extension,
            sha256=checked.sha256,
            size=checked.size,
            width=checked.metadata.get("width"),
            height=checked.metadata.get("height"),
            hint_box=hint_box,
        )
        if not save_with_file(reference, "file", path):
            raise ReferenceRefused(f"{name}: this photo is already a reference")
    return reference


def add_reference_upload(character: Character, upload: UploadedFile) -> ReferenceImage:
    with spooled(upload) as path:
        return add_reference(character, path, upload.name or "photo")


def _files_of(references) -> list[str]:
    names: list[str] = []
    for ref in references:
        names += [n for n in (ref.file.name, ref.crop) if n]
    return names


def _delete_files(names: list[str]) -> None:
    for name in names:
        try:
            delete_file(name)
        except OSError:
            # The rows are gone; an orphaned file is the smaller harm.
            logger.warning("could not delete a character file")


def remove_reference(reference: ReferenceImage) -> None:
    """The reference, its embedding and its files go; the identity is made
    again from what is left, in the same transaction."""
    character = reference.character
    names = _files_of([reference])
    with transaction.atomic():
        reference.delete()
        rebuild_identity(character)
        transaction.on_commit(lambda: _delete_files(names))


def delete_character(character: Character) -> None:
    """The character with every reference photo, face crop and embedding."""
    names = _files_of(character.references.all())
    character.delete()
    transaction.on_commit(lambda: _delete_files(names))


# --- checking references ----------------------------------------------------


def _fractions(box, width: int, height: int) -> list[float]:
    x0, y0, x1, y1 = box
    return [round(x0 / width, 5), round(y0 / height, 5),
            round(x1 / width, 5), round(y1 / height, 5)]  # fmt: skip


def _store_crop(reference: ReferenceImage, crop: np.ndarray) -> str:
    owner = reference.character.owner_id
    with scratch_dir("crop") as tmp:
        local = save_rgb(crop, tmp / "crop.jpg", quality=90)
        return store_file(local, f"characters/{owner}/crops/{uuid.uuid4().hex}.jpg")


def analyse_reference(reference: ReferenceImage, provider: FaceProvider) -> bool:
    """Check one reference photo with ``provider`` and save what it found:
    status, notes, quality, the face's box, its aligned crop and embedding.
    False when the reference was removed meanwhile (nothing is kept)."""
    try:
        with local_file(reference.file.name) as path:
            image = load_rgb(path)
    except (FileNotFoundError, ValueError):
        if not ReferenceImage.objects.filter(pk=reference.pk).exists():
            return False  # removed, with its file, while it waited
        raise
    height, width = image.shape[:2]
    hint = None
    if reference.hint_box:
        x0, y0, x1, y1 = reference.hint_box
        hint = (x0 * width, y0 * height, x1 * width, y1 * height)
    check = check_reference(provider, image, hint=hint)
    crop = ""
    if check.face is not None:
        crop = _store_crop(reference, align(image, check.face, CROP_SIZE))
    with transaction.atomic():
        row = ReferenceImage.objects.select_for_update().filter(pk=reference.pk)
        current = row.first()
        if current is None:
            transaction.on_commit(lambda: _delete_files([crop]))
            return False
        row.update(
            status=(
                ReferenceImage.Status.ACCEPTED
                if check.accepted
                else ReferenceImage.Status.REJECTED
            ),
            notes=[n.to_dict() for n in check.notes],
            quality=check.quality.to_dict() if check.quality else {},
            faces_found=check.faces_found,
            face_box=(
                _fractions(check.face.box, width, height) if check.face else None
            ),
            crop=crop,
        )
        FaceEmbedding.objects.filter(
            reference=current, provider_version=provider.version
        ).delete()
        if check.embedding is not None:
            FaceEmbedding.objects.create(
                reference=current,
                provider=provider.name,
                provider_version=provider.version,
                size=len(check.embedding),
                vector=np.asarray(check.embedding, dtype="<f4").tobytes(),
            )
    if current.crop and current.crop != crop:
        _delete_files([current.crop])
    return True


def _different_person_note(score: float, threshold: float) -> dict[str, str]:
    return {
        "code": DIFFERENT_PERSON,
        "level": REJECT,
        "message": (
            "this face does not look like the same person as the other"
            f" references (similarity {score:.2f}; {threshold:.2f} is needed)"
        ),
    }


def rebuild_identity(character: Character) -> Character | None:
    """Make the identity from the accepted references again, turning away
    those whose face is not the person most of them show; None when the
    character was deleted meanwhile."""
    with transaction.atomic():
        found = Character.objects.select_for_update().filter(pk=character.pk).first()
        if found is None:
            return None
        character = found
        threshold = threshold_of(character)
        rows = list(
            FaceEmbedding.objects.filter(
                reference__character=character,
                provider_version=character.provider_version,
            )
            .select_related("reference")
            .order_by("reference__created_at", "reference__id")
        )
        # Candidates: every reference with a face that passed its own checks
        # (one turned away only for not matching the others is one again).
        candidates = [
            r for r in rows
            if all(n["level"] != REJECT or n["code"] == DIFFERENT_PERSON
                   for n in r.reference.notes)
        ]  # fmt: skip
        vectors = (
            np.stack([vector_from_bytes(bytes(r.vector)) for r in candidates])
            if candidates
            else np.zeros((0, 1))
        )
        groups = group_people(vectors, threshold) if candidates else []
        keep = set(groups[0]) if groups else set()
        identity = build_identity(vectors[sorted(keep)]) if keep else None
        for i, row in enumerate(candidates):
            ref = row.reference
            notes = [n for n in ref.notes if n["code"] != DIFFERENT_PERSON]
            if i in keep:
                status = ReferenceImage.Status.ACCEPTED
            else:
                assert identity is not None
                score = float(np.clip(vectors[i] @ identity.vector, 0.0, 1.0))
                notes.insert(0, _different_person_note(score, threshold))
                status = ReferenceImage.Status.REJECTED
            if notes != ref.notes or status != ref.status:
                ReferenceImage.objects.filter(pk=ref.pk).update(
                    status=status, notes=notes
                )
        if identity is None:
            character.set_identity(None)
            character.spread = character.spread_max = None
        else:
            character.set_identity(identity.to_bytes(), count=identity.count)
            character.spread = round(identity.spread, 5)
            character.spread_max = round(identity.spread_max, 5)
        character.save()
    return character


def register_pending(
    character: Character,
    provider: FaceProvider | None = None,
    progress: Progress | None = None,
) -> Character | None:
    """Check every reference still waiting, then make the identity again;
    None when the character was deleted meanwhile."""
    provider = provider or face_provider(character.provider)
    if character.provider_version != provider.version:
        # The provider changed its outputs: every reference is checked again
        # so the identity is made of embeddings of one version.
        Character.objects.filter(pk=character.pk).update(
            provider_version=provider.version
        )
        character.provider_version = provider.version
        character.references.update(status=ReferenceImage.Status.PENDING)
    pending = list(character.references.filter(status=ReferenceImage.Status.PENDING))
    for n, reference in enumerate(pending):
        if progress:
            progress(n / max(len(pending), 1), f"checking {reference.original_name}")
        analyse_reference(reference, provider)
    return rebuild_identity(character)
