"""Turning an uploaded file into an Asset: validate by content, then store under
a server-made name. A rejected file leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

from django.core.files.uploadedfile import UploadedFile

from media_jobs.files import check_upload, save_with_file, spooled
from workers.storyboard.scripts import ScriptError, load_script
from workers.validation import (
    UploadRejected,
    ValidatedUpload,
    clean_display_name,
)

from .models import Asset, Project
from .pipeline import start_analysis, start_casting

SCRIPT_SUFFIXES = (".md", ".markdown", ".txt", ".pdf")

__all__ = ["UploadRejected", "accept_upload", "add_asset", "add_asset_from_path"]


def _check_script(path: Path, name: str, checked: ValidatedUpload) -> None:
    """A document is the project's script: one the storyboard cannot read
    is refused now, with the reason, rather than failing a render later."""
    if checked.kind != Asset.Kind.DOCUMENT:
        return
    suffix = Path(name).suffix.lower()
    known = suffix if suffix in SCRIPT_SUFFIXES else checked.extension
    try:
        load_script(Path(f"script{known}"), path.read_bytes())
    except ScriptError as exc:
        raise UploadRejected(f"{clean_display_name(name)}: {exc}") from exc


def _save(
    project: Project, path: Path, original_name: str, checked: ValidatedUpload
) -> Asset:
    _check_script(path, original_name, checked)
    original_name = clean_display_name(original_name)
    if project.assets.filter(sha256=checked.sha256).exists():
        raise UploadRejected(f"{original_name}: this file is already in the project.")
    meta = checked.metadata
    asset = Asset(
        project=project,
        owner=project.owner,
        kind=checked.kind,
        original_name=original_name,
        mime=checked.mime,
        extension=checked.extension,
        sha256=checked.sha256,
        size=checked.size,
        width=meta.get("width"),
        height=meta.get("height"),
        duration=meta.get("duration"),
        sample_rate=meta.get("sample_rate"),
        channels=meta.get("channels"),
        codec=meta.get("codec") or "",
        metadata=meta,
    )
    if not save_with_file(asset, "file", path):
        raise UploadRejected(f"{original_name}: this file is already in the project.")
    return asset


def add_asset_from_path(
    project: Project,
    path: Path,
    *,
    original_name: str | None = None,
    expected_kind: str | None = None,
) -> Asset:
    name = original_name if original_name is not None else path.name
    checked = check_upload(path, name, expected_kind)
    return _save(project, path, name, checked)


def add_asset(
    project: Project, upload: UploadedFile, *, expected_kind: str | None = None
) -> Asset:
    """Validate and store a file from a request (page form or API)."""
    name = upload.name or ""
    with spooled(upload) as path:
        checked = check_upload(path, name, expected_kind)
        return _save(project, path, name, checked)


def accept_upload(project: Project, upload: UploadedFile) -> Asset:
    """A file from the page or the API: stored; a song analysed at once so
    its picture appears and a render finds the analysis ready, and a photo
    looked at for the project's character (Quick mode)."""
    asset = add_asset(project, upload)
    if asset.kind == Asset.Kind.AUDIO:
        start_analysis(asset)
    elif asset.kind == Asset.Kind.IMAGE:
        start_casting(project)
    return asset
