"""Deleting projects and assets together with their stored files.

``FileField`` never deletes files by itself, and renders keep only storage
names, so without this every deletion would leave orphaned media behind. The
rows go first: if deleting the row fails, the file is still there for the row
that still points at it.

Nothing a queued or running job reads may be deleted under it: the project of
an active job, or the song an active render was asked with. The project row
is locked while checking, as ``start_render`` locks it, so a render cannot
start between the check and the deletion.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import ProtectedError, Q

from media_jobs import lifecycle
from media_jobs.files import delete_file
from media_jobs.models import Job

from .models import Asset, Project, Scene

logger = logging.getLogger(__name__)


class AssetInUse(ValueError):
    """The asset is still used by a render (its scenes, or an active job's
    song); the message says so."""


class ProjectBusy(ValueError):
    """The project has a queued or running job; the message says so."""


def _delete_files(names: list[str]) -> None:
    for name in names:
        try:
            delete_file(name)
        except OSError:
            # The row is gone already; an orphaned file is a smaller harm than
            # failing the user's request after the fact.
            logger.warning("could not delete stored file %s", name, exc_info=True)


def _lock(project: Project) -> None:
    Project.objects.select_for_update().filter(pk=project.pk).first()


def _active_jobs(project: Project) -> list[Job]:
    # A render held for its owner's review still needs its inputs.
    held = project.jobs.filter(status=Job.Status.REVIEW)
    return [*lifecycle.live_jobs(project.jobs.all()), *held]


def _job_using_song(asset: Asset) -> Job | None:
    """The active job whose song is ``asset``, if any."""
    if asset.kind != Asset.Kind.AUDIO:
        return None
    jobs = _active_jobs(asset.project)
    for job in jobs:
        if job.params.get("music") == asset.pk:
            return job
    # Renders asked before the song was frozen in their params read the
    # project's current song when they reach it: protect that one.
    legacy = [
        job for job in jobs if job.kind == Job.Kind.RENDER and "music" not in job.params
    ]
    if legacy:
        current = asset.project.music()
        if current is not None and current.pk == asset.pk:
            return legacy[0]
    return None


def remove_asset(asset: Asset) -> None:
    """Delete the asset row and its stored file.

    Raises ``AssetInUse`` for an image used by a render's scenes and for the
    song of a queued or running render.
    """
    name = asset.file.name
    try:
        with transaction.atomic():
            _lock(asset.project)
            job = _job_using_song(asset)
            if job is not None:
                raise AssetInUse(
                    f"{asset.original_name} is the song of render #{job.pk}, "
                    f"which is {job.get_status_display().lower()}; remove it "
                    "once that render has finished."
                )
            asset.delete()
    except ProtectedError as exc:
        raise AssetInUse(
            f"{asset.original_name} is used by the scenes of a render; "
            "delete that render's project or keep the file."
        ) from exc
    _delete_files([name] if name else [])


def remove_project(project: Project) -> None:
    """Delete the project, its assets, jobs and renders, and their stored files.

    Raises ``ProjectBusy`` while one of its jobs is queued or running: its
    worker would go on writing files for rows that no longer exist.

    Cached scene clips are content-addressed and may be shared with other
    projects, so they stay: the shared cache outlives any one project and is
    left to the cache tooling (nothing prunes it yet).
    """
    with transaction.atomic():
        _lock(project)
        active = _active_jobs(project)
        if active:
            job = active[0]
            raise ProjectBusy(
                f"“{project.title}” has a job that is "
                f"{job.get_status_display().lower()} (#{job.pk}); delete the "
                "project once it has finished."
            )
        names = [name for name in project.assets.values_list("file", flat=True) if name]
        for video, thumbnail in project.renders.values_list("file", "thumbnail"):
            names.extend(n for n in (video, thumbnail) if n)
        # Scene.image protects assets; the project's scenes go with it anyway,
        # so they are deleted first and the cascade can take the assets.
        Scene.objects.filter(Q(project=project) | Q(image__project=project)).delete()
        project.delete()
    _delete_files(names)
