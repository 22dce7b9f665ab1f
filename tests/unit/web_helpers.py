"""Helpers of the web-layer tests: real files made in the test, rows the
pipeline would make (renders, scenes) without running it, and raw requests."""

from __future__ import annotations

import io
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from media_jobs.models import Job
from projects.models import Asset, Project, Render, Scene

HTML_POLYGLOT = b"<!doctype html><html><script>alert(document.cookie)</script></html>"


def png_bytes(
    color: tuple[int, int, int] = (200, 40, 40), size: tuple[int, int] = (64, 48)
) -> bytes:
    """A real PNG, made with Pillow; different colours give different hashes."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def files_under(root: Path) -> list[Path]:
    root = Path(root)
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file())


def media_files() -> list[Path]:
    """Every file under MEDIA_ROOT (a temp folder per test)."""
    return files_under(settings.MEDIA_ROOT)


def multipart_body(
    field: str, filename: str, content: bytes, content_type: str
) -> tuple[bytes, str]:
    """A multipart body with the file name exactly as given.

    Django's test client strips directories from file names before sending,
    so a path in a name must be written into the body by hand to reach the
    server at all.
    """
    boundary = "studioTestBoundary7MA4YWxkTrZu0gW"
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            (
                f'Content-Disposition: form-data; name="{field}"; '
                f'filename="{filename}"\r\n'
            ).encode(),
            f"Content-Type: {content_type}\r\n\r\n".encode(),
            content,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    return body, f"multipart/form-data; boundary={boundary}"


def stored_image_asset(
    project: Project, *, name: str = "face.png", color=(10, 120, 200)
) -> Asset:
    """An image asset as the upload would store it, without the validation."""
    content = png_bytes(color)
    asset = Asset(
        project=project,
        owner=project.owner,
        kind=Asset.Kind.IMAGE,
        original_name=name,
        mime="image/png",
        extension=".png",
        sha256=f"{sum(color):064d}",
        size=len(content),
        width=64,
        height=48,
    )
    asset.file.save("upload", ContentFile(content), save=False)
    asset.save()
    return asset


def stored_document_asset(project: Project, *, text: str = "Verse one.\n") -> Asset:
    content = text.encode()
    asset = Asset(
        project=project,
        owner=project.owner,
        kind=Asset.Kind.DOCUMENT,
        original_name="script.md",
        mime="text/markdown",
        extension=".md",
        sha256="d" * 64,
        size=len(content),
    )
    asset.file.save("upload", ContentFile(content), save=False)
    asset.save()
    return asset


def stored_audio_asset(project: Project, *, name: str = "take2.wav") -> Asset:
    """An audio asset row with a stand-in file, for tests that never play it."""
    content = b"RIFF\x24\x00\x00\x00WAVE stand-in"
    asset = Asset(
        project=project,
        owner=project.owner,
        kind=Asset.Kind.AUDIO,
        original_name=name,
        mime="audio/wav",
        extension=".wav",
        sha256="a" * 64,
        size=len(content),
        duration=12.0,
    )
    asset.file.save("upload", ContentFile(content), save=False)
    asset.save()
    return asset


def finished_render(job: Job, image: Asset) -> Render:
    """The rows and files a successful render leaves: scenes, video, thumbnail."""
    project = job.project
    Scene.objects.create(
        project=project,
        job=job,
        index=0,
        start=0.0,
        end=2.0,
        start_frame=0,
        end_frame=60,
        image=image,
        move="zoom_in",
        status=Scene.Status.DONE,
        cached=True,
    )
    base = f"renders/{project.owner_id}/{job.pk}"
    video = default_storage.save(
        f"{base}/video.mp4", ContentFile(b"\x00\x00\x00\x18ftypmp42 video")
    )
    thumb = default_storage.save(
        f"{base}/thumbnail.jpg", ContentFile(b"\xff\xd8\xff\xe0 thumb")
    )
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.SUCCEEDED,
        progress=1.0,
        stage="done",
        message="1 scenes, 2.00 s",
    )
    job.refresh_from_db()
    return Render.objects.create(
        project=project,
        job=job,
        file=video,
        thumbnail=thumb,
        output_format="mp4",
        preset="preview",
        width=640,
        height=360,
        fps=30,
        duration=2.0,
        size=30,
        manifest={"manifest_version": 1, "job": job.pk, "cuts": []},
    )
