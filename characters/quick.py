"""Quick mode: the character found in a project's photos, with no choice
asked of the user, and where the character is in each photo.

Every face in every photo is embedded and the faces are grouped into people
(``workers.faces.identity.group_people``); the person seen in the most photos
(ties: the one in the earliest photo) becomes the character, registered from
those photos with the face of that person marked in each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workers.faces.base import Face, FaceProvider
from workers.faces.identity import group_people
from workers.faces.images import load_rgb
from workers.faces.quality import MIN_FACE_PX

from .models import MAX_REFERENCES, Character
from .registration import (
    ReferenceRefused,
    add_reference,
    create_character,
    delete_character,
    face_provider,
    provider_threshold,
    register_pending,
    threshold_of,
)


@dataclass(frozen=True)
class Photo:
    path: Path
    name: str  # as the user knows it
    key: int  # the caller's id for it (an asset id)


@dataclass(frozen=True, eq=False)
class PhotoFaces:
    photo: Photo
    size: tuple[int, int]  # (width, height) of the upright photo
    faces: list[Face]
    embeddings: np.ndarray = field(repr=False)

    def fractions(self, face: Face) -> list[float]:
        width, height = self.size
        x0, y0, x1, y1 = face.box
        return [
            round(max(0.0, x0 / width), 5),
            round(max(0.0, y0 / height), 5),
            round(min(1.0, x1 / width), 5),
            round(min(1.0, y1 / height), 5),
        ]


def scan(photos: Sequence[Photo], provider: FaceProvider) -> list[PhotoFaces]:
    """The faces big enough to judge in each photo, with their embeddings."""
    found = []
    for photo in photos:
        image = load_rgb(photo.path)
        faces = [f for f in provider.detect(image) if f.size >= MIN_FACE_PX]
        embeddings = provider.embed(image, faces)
        height, width = image.shape[:2]
        found.append(PhotoFaces(photo, (width, height), faces, embeddings))
    return found


def find_character(
    owner,
    photos: Sequence[Photo],
    name: str,
    provider: FaceProvider | None = None,
) -> Character | None:
    """Register the person most of ``photos`` show as a new character of
    ``owner``; None when no photo shows a face."""
    provider = provider or face_provider()
    scans = scan(photos, provider)
    owners = [(i, j) for i, s in enumerate(scans) for j in range(len(s.faces))]
    if not owners:
        return None
    rows = np.concatenate([s.embeddings for s in scans if len(s.faces)])
    groups = group_people(rows, provider_threshold(provider.name))

    def photos_of(group: list[int]) -> list[int]:
        return sorted({owners[k][0] for k in group})

    group = min(groups, key=lambda g: (-len(photos_of(g)), min(photos_of(g))))
    chosen: dict[int, int] = {}  # photo -> its face of that person
    for k in group:
        i, j = owners[k]
        if i not in chosen or scans[i].faces[j].area > scans[i].faces[chosen[i]].area:
            chosen[i] = j
    character = create_character(owner, name, auto_created=True, provider=provider.name)
    try:
        for i in sorted(chosen)[:MAX_REFERENCES]:
            s = scans[i]
            try:
                add_reference(
                    character,
                    s.photo.path,
                    s.photo.name,
                    hint_box=s.fractions(s.faces[chosen[i]]),
                )
            except ReferenceRefused:
                continue  # the same photo twice in the project
        return register_pending(character, provider)
    except BaseException:
        # Nobody will own a half-registered character: its photos and face
        # data go with it, and a later attempt starts afresh.
        delete_character(character)
        raise


@dataclass(frozen=True)
class PhotoMatch:
    score: float  # the best face's similarity to the character; 0: no face
    box: list[float] | None  # that face, as fractions of the photo
    faces: int
    shows_character: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "score": round(self.score, 4),
            "box": self.box,
            "faces": self.faces,
            "shows_character": self.shows_character,
        }


def match_photo(
    character: Character, photo: Photo, provider: FaceProvider | None = None
) -> PhotoMatch:
    """Where (and whether) ``character`` is in ``photo``."""
    provider = provider or face_provider(character.provider)
    s = scan([photo], provider)[0]
    if not s.faces:
        return PhotoMatch(0.0, None, 0, False)
    identity = character.identity_vector()
    scores = np.clip(s.embeddings @ identity, 0.0, 1.0)
    best = int(np.argmax(scores))
    score = float(scores[best])
    return PhotoMatch(
        score=score,
        box=s.fractions(s.faces[best]),
        faces=len(s.faces),
        shows_character=score >= threshold_of(character),
    )
