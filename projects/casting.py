"""The character of a render: who the video is about (the project's chosen
character, or in Quick mode the person found in its photos), and where that
person is in each photo, which decides the scenes that must show them and
where their camera moves close in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from characters.models import MAX_REFERENCES, Character, ReferenceImage
from characters.quick import Photo, find_character, match_photo
from characters.registration import (
    ReferenceRefused,
    add_reference,
    delete_character,
    register_pending,
    threshold_of,
)
from media_jobs import cache
from media_jobs.files import local_file
from media_jobs.models import CacheEntry, Job

from .models import Asset, Project

Progress = Callable[[float, str], None]

# Where the crop centres a photo whose face is unknown. Faces in portraits
# sit in the upper part of the picture, so a centred crop of a portrait into
# a landscape frame cuts through the face: frame the upper third.
DEFAULT_FOCUS = (0.5, 0.3)


def _photos(images: Sequence[Asset], stack: ExitStack) -> list[Photo]:
    return [
        Photo(stack.enter_context(local_file(a.file.name)), a.original_name, a.pk)
        for a in images
    ]


@dataclass(frozen=True)
class Cast:
    """Who a render checks its scenes against (None: nobody), whether
    finding them took any work (a face looked for, a photo checked) or came
    whole from what was known, and the photos' matches (``photo_matches``)
    when finding them already made those for the identity as it now is."""

    character: Character | None
    worked: bool
    matches: dict[str, dict[str, Any]] | None = None


def render_character(
    project: Project, images: Sequence[Asset], progress: Progress
) -> Cast:
    """The character whose identity this render checks its scenes against,
    registered first when it has photos waiting; None when the project has
    none (and Quick mode found no face)."""
    character = project.character
    worked = False
    matches = None
    if character is None:
        if not project.auto_character or not images:
            return Cast(None, worked=False)
        progress(0.1, "looking for the character in the photos")
        with ExitStack() as stack:
            name = f"Lead of {project.title}"[:120]
            found = find_character(project.owner, _photos(images, stack), name)
        if found is None:
            return Cast(None, worked=True)
        claimed = Project.objects.filter(pk=project.pk, character=None).update(
            character=found
        )
        if not claimed:  # another render of the project found one first
            delete_character(found)
            project.refresh_from_db(fields=["character"])
            return render_character(project, images, progress)
        character, worked = found, True
    elif character.auto_created and project.auto_character:
        looked, matches = _add_new_photos(character, images, progress)
        worked = looked > 0
    if character.references.filter(status=ReferenceImage.Status.PENDING).exists():
        progress(0.2, f"checking the photos of {character.name}")
        registered, worked = register_pending(character), True
        if registered is None:  # deleted meanwhile: nobody to check against
            return Cast(None, worked)
        character, matches = registered, None  # a new identity, new matches
    return Cast(character if character.is_ready else None, worked, matches)


def _add_new_photos(
    character: Character, images: Sequence[Asset], progress: Progress
) -> tuple[int, dict[str, dict[str, Any]] | None]:
    """Quick mode goes on learning: project photos uploaded after the
    character was found become references when they show that person. The
    number of photos looked at (the others' matches were known), and the
    matches (a photo added waits to be registered, which makes them new)."""
    if not character.is_ready:
        return 0, None
    known = set(character.references.values_list("sha256", flat=True))
    room = (
        MAX_REFERENCES
        - character.references.exclude(status=ReferenceImage.Status.REJECTED).count()
    )
    matches, computed = photo_matches(character, images, progress)
    for asset in images:
        match = matches[str(asset.pk)]
        if room <= 0 or asset.sha256 in known or not match["shows_character"]:
            continue
        with local_file(asset.file.name) as path:
            try:
                add_reference(
                    character, path, asset.original_name, hint_box=match["box"]
                )
            except ReferenceRefused:
                continue
        room -= 1
    return computed, matches


def photo_matches(
    character: Character, images: Sequence[Asset], progress: Progress
) -> tuple[dict[str, dict[str, Any]], int]:
    """For each photo (by asset id): does it show ``character``, how alike,
    and where; and how many photos were looked at (the rest came from the
    cache, by the photo's content and the character's identity)."""
    matches: dict[str, dict[str, Any]] = {}
    computed = 0
    for n, asset in enumerate(images):
        key = cache.fingerprint(
            {
                "kind": "faces",
                "image": asset.sha256,
                "identity": character.identity_key,
                "threshold": threshold_of(character),
            }
        )
        progress(0.3 + 0.7 * n / len(images), f"finding {character.name} in photos")
        found, made = cache.remember(
            key,
            CacheEntry.Kind.FACES,
            lambda asset=asset: _match(character, asset),
            engine_version=character.provider_version,
        )
        matches[str(asset.pk)] = found
        computed += made
    return matches, computed


def _match(character: Character, asset: Asset) -> dict[str, Any]:
    with local_file(asset.file.name) as path:
        return match_photo(
            character, Photo(path, asset.original_name, asset.pk)
        ).to_dict()


def focus_of(match: dict[str, Any] | None) -> tuple[float, float] | None:
    """Where a camera move should close in on a photo: its character's face."""
    if not match or not match.get("box"):
        return None
    x0, y0, x1, y1 = match["box"]
    return ((x0 + x1) / 2, (y0 + y1) / 2)


def cast_for_photo(
    job: Job, image: Asset, *, look: bool = True
) -> tuple[int | None, tuple[float, float]]:
    """The character a scene of ``job`` made from ``image`` shows (None:
    nobody to check) and where its camera closes in (their face, else the
    middle). A photo the render's character stage did not see (one chosen
    to replace a scene's) is looked at now when ``look``; without it, the
    scene is taken to show the render's character until its task looks."""
    found = job.params.get("character") or {}
    match = (found.get("photos") or {}).get(str(image.pk))
    if match is None and found.get("id"):
        character = Character.objects.filter(pk=found["id"]).first()
        if not look or character is None or not character.is_ready:
            return (character.pk if character else None), DEFAULT_FOCUS
        match = photo_matches(character, [image], lambda _f, _m: None)[0][str(image.pk)]
    shows = bool(match and match.get("shows_character"))
    return (found.get("id") if shows else None), focus_of(match) or DEFAULT_FOCUS
