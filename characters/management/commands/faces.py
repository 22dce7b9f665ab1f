"""``manage.py faces detect PATH --json`` and ``manage.py faces compare PATH
PATH --json`` (DESIGN.md): the faces in a picture with their boxes, landmarks
and quality, and whether two pictures show the same person.

Nothing is stored, and embeddings are never printed: the commands print
boxes, landmarks, quality figures and similarities only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from characters.registration import face_provider
from workers.faces.base import Face, FaceModelMissing, FaceProvider, similarity
from workers.faces.images import load_rgb
from workers.faces.providers import PROVIDERS
from workers.faces.quality import judge, measure


def _round(values: Any) -> Any:
    return np.round(np.asarray(values, dtype=float), 2).tolist()


def describe(image: np.ndarray, face: Face) -> dict[str, Any]:
    quality = measure(image, face)
    return {
        "box": _round(face.box),
        "score": round(face.score, 4),
        "landmarks": _round(face.landmarks),
        "quality": quality.to_dict(),
        "notes": [note.to_dict() for note in judge(quality)],
    }


class Command(BaseCommand):
    help = (
        "Faces in pictures. 'detect PATH': every face with its box, landmarks,"
        " detector score and quality notes. 'compare PATH PATH': the similarity"
        " of the largest face in each, in [0, 1], and the same-person verdict."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        detect = actions.add_parser("detect", help="find the faces in a picture")
        detect.add_argument("path", type=Path, metavar="PATH")
        compare = actions.add_parser("compare", help="are two faces one person?")
        compare.add_argument("paths", type=Path, nargs=2, metavar="PATH")
        for sub in (detect, compare):
            sub.add_argument("--json", action="store_true", help="print JSON")
            sub.add_argument(
                "--provider",
                choices=PROVIDERS,
                help="face provider (default: STUDIO_FACE_PROVIDER)",
            )

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            provider = face_provider(opts["provider"])
        except FaceModelMissing as exc:
            raise CommandError(str(exc)) from exc
        if opts["action"] == "detect":
            self._detect(provider, opts["path"], opts["json"])
        else:
            self._compare(provider, opts["paths"], opts["json"])

    def _load(self, path: Path) -> np.ndarray:
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            return load_rgb(path)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

    def _detect(self, provider: FaceProvider, path: Path, as_json: bool) -> None:
        image = self._load(path)
        faces = provider.detect(image)
        height, width = image.shape[:2]
        result = {
            "path": str(path),
            "width": width,
            "height": height,
            "provider": provider.name,
            "faces": [describe(image, face) for face in faces],
        }
        if as_json:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(f"{path.name}: {len(faces)} face(s), {width}x{height}")
        for n, face in enumerate(result["faces"], start=1):
            notes = "; ".join(note["message"] for note in face["notes"]) or "good"
            self.stdout.write(
                f"  {n}. box {face['box']} score {face['score']}: {notes}"
            )

    def _compare(
        self, provider: FaceProvider, paths: list[Path], as_json: bool
    ) -> None:
        vectors = []
        counts = []
        for path in paths:
            image = self._load(path)
            faces = provider.detect(image)
            if not faces:
                raise CommandError(f"{path}: no face was found")
            counts.append(len(faces))
            vectors.append(provider.embed(image, faces[:1])[0])
        score = similarity(vectors[0], vectors[1])
        result = {
            "paths": [str(p) for p in paths],
            "provider": provider.name,
            "similarity": round(score, 4),
            "threshold": provider.threshold,
            "same_person": score >= provider.threshold,
            "faces": counts,
        }
        if as_json:
            self.stdout.write(json.dumps(result))
            return
        verdict = "the same person" if result["same_person"] else "different people"
        self.stdout.write(
            f"similarity {score:.3f} (same person at {provider.threshold:.2f} or"
            f" more): {verdict}"
        )
