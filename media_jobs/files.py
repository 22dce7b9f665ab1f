"""Moving files between the storage backend (local volume or S3) and the local
paths that engines in ``workers/`` read and write, checking and storing
uploads, and serving stored user files to their owner's browser."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, models, transaction
from django.http import FileResponse, Http404

from workers.validation import ValidatedUpload, validate_upload


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A private folder for one task's temporary files, removed however it ends."""
    root = Path(settings.STUDIO_WORK_DIR)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{prefix}-", dir=root) as tmp:
        yield Path(tmp)


def _path_on_volume(name: str) -> Path | None:
    """Where ``name`` lives on a local volume; None for remote storage (S3)."""
    try:
        return Path(default_storage.path(name))
    except NotImplementedError:
        return None


@contextmanager
def local_file(name: str) -> Iterator[Path]:
    """A local path for a stored file: the file itself on a local volume,
    a temporary copy for remote storage."""
    path = _path_on_volume(name)
    if path is not None:
        yield path
        return
    with scratch_dir("fetch") as tmp:
        target = tmp / Path(name).name
        with default_storage.open(name, "rb") as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, length=1024 * 1024)
        yield target


def store_file(local: Path, name: str) -> str:
    """Save ``local`` under exactly ``name``, all at once; the name.

    Names are content-addressed or job-scoped, so an existing file is the same
    file and is kept. Because a name that exists is trusted as complete, a
    file must never be visible half-written: on a local volume it is copied
    to a temporary name beside the target and renamed into place; object
    stores (S3) make an upload visible only once it is whole.
    """
    return store_new_file(local, name)[0]


def store_new_file(local: Path, name: str) -> tuple[str, bool]:
    """``store_file``, and whether this call wrote the file (False: it was
    already there, perhaps another job's output, and is not this caller's to
    delete when what it goes with fails)."""
    if default_storage.exists(name):
        return name, False
    target = _path_on_volume(name)
    if target is None:
        with local.open("rb") as handle:
            saved = default_storage.save(name, File(handle, name=Path(name).name))
        return saved, True
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, part_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part"
    )
    part = Path(part_name)
    try:
        with os.fdopen(fd, "wb") as dst, local.open("rb") as src:
            shutil.copyfileobj(src, dst, length=1024 * 1024)
        os.chmod(part, settings.FILE_UPLOAD_PERMISSIONS or 0o644)
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return name, True


@contextmanager
def spooled(upload: UploadedFile) -> Iterator[Path]:
    """A local path holding an uploaded file: Django's own temporary file
    for a large upload, else a scratch copy of the bytes held in memory."""
    if hasattr(upload, "temporary_file_path"):
        yield Path(upload.temporary_file_path())
        return
    with scratch_dir("upload") as tmp:
        path = tmp / "upload.bin"
        with path.open("wb") as dst:
            for chunk in upload.chunks():
                dst.write(chunk)
        yield path


def check_upload(
    path: Path, original_name: str, expected_kind: str | None
) -> ValidatedUpload:
    """``validate_upload`` under the studio's limits (STUDIO_MAX_*)."""
    return validate_upload(
        path,
        original_name=original_name,
        expected_kind=expected_kind,
        max_bytes=settings.STUDIO_MAX_UPLOAD_BYTES,
        max_image_pixels=settings.STUDIO_MAX_IMAGE_PIXELS,
        max_audio_seconds=settings.STUDIO_MAX_AUDIO_SECONDS,
    )


def save_with_file(row: models.Model, field: str, path: Path) -> bool:
    """Store ``path`` in the row's file field ``field`` (its upload_to makes
    the name) and save the row; False when a uniqueness constraint refused
    the row. The stored file never outlives a row that was not saved."""
    stored = getattr(row, field)
    with path.open("rb") as handle:
        stored.save(field, File(handle), save=False)
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        stored.delete(save=False)
        return False
    except BaseException:
        stored.delete(save=False)
        raise
    return True


def delete_file(name: str) -> None:
    if name and default_storage.exists(name):
        default_storage.delete(name)


def stored_file_response(
    name: str, content_type: str, *, filename: str, as_attachment: bool
) -> FileResponse:
    """The stored file ``name`` as a protected download; 404 when there is none.

    The caller has already checked that the file is the requesting user's:
    nothing stored is ever served from a public media URL.
    """
    if not name:
        raise Http404("There is no such file.")
    try:
        handle = default_storage.open(name, "rb")
    except FileNotFoundError as exc:
        raise Http404("The stored file is missing.") from exc
    response = FileResponse(
        handle,
        content_type=content_type,
        as_attachment=as_attachment,
        filename=filename,
    )
    # Stored files are user material: never let a browser sniff them into
    # something executable, sandbox them if one is opened directly, and keep
    # them out of shared caches (they are only for their owner).
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = (
        "default-src 'none'; media-src 'self'; sandbox"
    )
    response["Cache-Control"] = "private, max-age=3600"
    return response
