"""Helpers of the character and review tests: characters registered for real
from photos, photos as uploads, and scenes the consistency gate has checked
(passed or flagged) against a character."""

from __future__ import annotations

import io
from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageOps

from characters.models import Character
from characters.registration import add_reference, create_character, register_pending
from projects.models import Scene
from tests.factories import SceneFactory

THRESHOLD = 0.91


def mirrored(path: Path, folder: Path) -> Path:
    """The same person, another photo (a different file and hash)."""
    target = folder / f"mirrored-{Path(path).stem}.png"
    ImageOps.mirror(Image.open(path).convert("RGB")).save(target)
    return target


def register_character(owner, name: str, photos: list[tuple[Path, str]]) -> Character:
    """A character registered for real from ``photos`` (path, name)."""
    character = create_character(owner, name)
    for path, original_name in photos:
        add_reference(character, Path(path), original_name)
    return register_pending(character)


def photo_upload(path: Path, name: str | None = None) -> SimpleUploadedFile:
    path = Path(path)
    kind = "image/jpeg" if path.suffix == ".jpg" else "image/png"
    return SimpleUploadedFile(name or path.name, path.read_bytes(), kind)


def jpeg_bytes(color=(90, 60, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def failed_gate(score: float, character: Character) -> dict:
    """What the gate stores for a scene that failed: someone else from 1 s."""
    other = {"frame": 30, "time": 1.0, "faces": 1, "score": score,
             "box": [0.4, 0.2, 0.6, 0.5], "sampled": True}  # fmt: skip
    return {
        "passed": False,
        "score": score,
        "presence": 0.6667,
        "threshold": THRESHOLD,
        "frames": [
            {
                "frame": 0,
                "time": 0.0,
                "faces": 1,
                "score": 0.953,
                "box": [0.4, 0.2, 0.6, 0.5],
                "sampled": True,
            },
            other,
            {
                "frame": 59,
                "time": 1.9667,
                "faces": 0,
                "score": None,
                "box": None,
                "sampled": True,
            },
        ],  # fmt: skip
        "failure": other,
        "reason": "someone else is shown from 1.00 s",
        "attempts": [
            {"seed": 11, "score": 0.301, "passed": False},
            {"seed": 12, "score": score, "passed": False},
        ],
        "character": character.pk,
    }


GENERATOR = "drift"  # a test generator whose output depends on its seed


def seeded_generator(settings) -> str:
    """The registry key of a model whose engine takes seeds (the drifting
    test engine), so its scenes can be regenerated; call with the
    ``settings`` fixture (and clear ``projects.scene_engines.engines``)."""
    from media_jobs.models import ModelSpec
    from projects.scene_engines import engines

    settings.STUDIO_SCENE_ENGINES = ["tests.engines:DriftingEngine"]
    engines.cache_clear()
    ModelSpec.objects.get_or_create(
        key=GENERATOR,
        defaults={"name": "Drifting test generator", "kind": "scene",
                  "engine": "drift-test", "revision": "1", "vram_gb": 0.0},
    )  # fmt: skip
    return GENERATOR


def make_scenes(
    project, job, character, photo, reviews, *, model: str = "photo"
) -> list[Scene]:
    """Finished scenes 0, 1, … of ``job`` showing ``character``, one per
    (review, score) in ``reviews``, with a thumbnail and the gate's findings."""
    scenes = []
    for index, (review, score) in enumerate(reviews):
        thumbnail = default_storage.save(
            f"scenes/{job.pk}/{index}.jpg", ContentFile(jpeg_bytes())
        )
        scenes.append(
            SceneFactory(
                project=project,
                job=job,
                index=index,
                image=photo,
                model=model,
                seed=100 + index,
                thumbnail=thumbnail,
                character=character,
                consistency=score,
                review=review,
                tries=2 if review == "flagged" else 1,
                gate=failed_gate(score, character)
                if review == "flagged"
                else {"passed": True, "score": score, "threshold": THRESHOLD},
            )
        )
    return scenes
