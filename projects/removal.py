"""Deleting projects and assets together with their stored files.

``FileField`` never deletes files by itself, and renders keep only storage
names, so without this every deletion would leave orphaned media behind. The
rows go first: if deleting the row fails, the file is still there for the row
that still points at it.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import ProtectedError, Q

from .files import delete_file
from .models import Asset, Project, Scene

logger = logging.getLogger(__name__)


class AssetInUse(ValueError):
    """The asset is still referenced by a render's scenes; the message says so."""


def _delete_files(names: list[str]) -> None:
    for name in names:
        try:
            delete_file(name)
        except OSError:
            # The row is gone already; an orphaned file is a smaller harm than
            # failing the user's request after the fact.
            logger.warning("could not delete stored file %s", name, exc_info=True)


def remove_asset(asset: Asset) -> None:
    """Delete the asset row and its stored file."""
    name = asset.file.name
    try:
        with transaction.atomic():
            asset.delete()
    except ProtectedError as exc:
        raise AssetInUse(
            f"{asset.original_name} is used by the scenes of a render; "
            "delete that render's project or keep the file."
        ) from exc
    _delete_files([name] if name else [])


def remove_project(project: Project) -> None:
    """Delete the project, its assets, jobs and renders, and their stored files.

    Cached scene clips are content-addressed and may be shared with other
    projects, so they stay (the cache is pruned separately).
    """
    names = [name for name in project.assets.values_list("file", flat=True) if name]
    for video, thumbnail in project.renders.values_list("file", "thumbnail"):
        names.extend(n for n in (video, thumbnail) if n)
    with transaction.atomic():
        # Scene.image protects assets; the project's scenes go with it anyway,
        # so they are deleted first and the cascade can take the assets.
        Scene.objects.filter(Q(project=project) | Q(image__project=project)).delete()
        project.delete()
    _delete_files(names)
