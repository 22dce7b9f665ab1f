"""The review queue: scenes that failed the consistency gate on every
attempt, waiting for their owner to decide.

* approve: the scene is kept as it is;
* regenerate: it is made again with a new seed (and checked again, with its
  attempts starting over);
* replace: it is made again from another photo of the project.

A render held for review (status "review") goes on once every flagged scene
has a decision: the scenes to make again are made (and checked) again, and
the video is assembled. A render that finished anyway (review policy
"continue") is left as it is:
regenerate and replace start a new render that makes that scene again and
takes every other scene from the cache (``pipeline.rerender_scene``).
"""

from __future__ import annotations

import random

from django.db import transaction
from django.db.models import QuerySet

from media_jobs import lifecycle, scheduler
from media_jobs.models import Job, JobStage, RunStatus, TaskRun

from .casting import cast_for_photo
from .models import Asset, Scene
from .pipeline import RenderNotReady, rerender_scene
from .scene_engines import UnknownModel, engine_for, model_spec

DECIDABLE_JOBS = (Job.Status.REVIEW, Job.Status.SUCCEEDED)


class ReviewRefused(ValueError):
    """The scene cannot be decided now; the message says why."""


def review_queue(user: object) -> QuerySet[Scene]:
    """The user's flagged scenes still waiting for a decision, oldest first."""
    if not getattr(user, "is_authenticated", False):
        return Scene.objects.none()
    return (
        Scene.objects.filter(
            project__owner=user,
            review=Scene.Review.FLAGGED,
            job__status__in=DECIDABLE_JOBS,
        )
        .select_related("project", "job", "image", "character")
        .order_by("job__created_at", "job_id", "index")
    )


def _locked_job(scene: Scene) -> Job:
    job = Job.objects.select_for_update().get(pk=scene.job_id)
    if job.status not in (*DECIDABLE_JOBS, *Job.ACTIVE_STATUSES):
        raise ReviewRefused(f"render #{job.pk} is {job.status}; retry it first")
    return job


def _flagged(scene: Scene) -> None:
    if scene.review != Scene.Review.FLAGGED:
        raise ReviewRefused(
            f"scene {scene.index} is {scene.get_review_display().lower()}, not"
            " waiting for a review"
        )


def _resume_when_decided(job: Job) -> None:
    """A held render whose flagged scenes all have a decision goes on."""
    if job.status != Job.Status.REVIEW:
        return
    if Scene.objects.filter(job=job, review=Scene.Review.FLAGGED).exists():
        return
    if lifecycle.resume(job.pk):
        scheduler.submit(job)


def approve(scene: Scene) -> Scene:
    """Keep a flagged scene."""
    with transaction.atomic():
        job = _locked_job(scene)
        scene.refresh_from_db()
        _flagged(scene)
        scene.review = Scene.Review.APPROVED
        scene.save(update_fields=["review"])
        _resume_when_decided(job)
    return scene


def _make_again(scene: Scene, job: Job, **changes: object) -> None:
    """Reopen one scene of a held render for its task to make again."""
    Scene.objects.filter(pk=scene.pk).update(
        status=Scene.Status.PENDING,
        review=Scene.Review.NONE,
        consistency=None,
        gate={},
        tries=0,
        error="",
        cached=False,
        **changes,
    )
    # Its task record and the scenes stage start afresh: this is new work,
    # not a redelivery of the old task.
    TaskRun.objects.filter(job=job, key=f"scene-{scene.index}").update(
        status=RunStatus.PENDING, deliveries=0, progress=0.0, error=""
    )
    JobStage.objects.filter(job=job, name="scenes").update(
        status=RunStatus.PENDING, finished_at=None, progress=0.0
    )
    finished = [s for s in job.params.get("stages_finished", []) if s != "scenes"]
    job.params = {**job.params, "stages_finished": finished}
    job.save(update_fields=["params"])
    _resume_when_decided(job)


def _new_render(scene: Scene, job: Job, seed: int, image: Asset | None) -> Job:
    try:
        child = rerender_scene(job, scene.index, image=image, seed=seed)
    except RenderNotReady as exc:
        raise ReviewRefused(str(exc)) from exc
    Scene.objects.filter(pk=scene.pk).update(review=Scene.Review.REDONE)
    return child


def check_decidable(scene: Scene) -> None:
    """Raise ``ReviewRefused`` unless ``scene`` can be regenerated or
    replaced now (checked before a replacement photo is stored)."""
    scene.refresh_from_db(fields=["review"])
    _flagged(scene)
    status = Job.objects.filter(pk=scene.job_id).values_list("status", flat=True)
    if status.first() not in DECIDABLE_JOBS:
        raise _still_making(scene.job_id)


def _still_making(job_id: int) -> ReviewRefused:
    return ReviewRefused(
        f"render #{job_id} is still making scenes; decide once it waits for the review"
    )


def _decide(scene: Scene, seed: int, image: Asset | None = None) -> Job:
    with transaction.atomic():
        job = _locked_job(scene)
        scene.refresh_from_db()
        _flagged(scene)
        if job.status == Job.Status.SUCCEEDED:
            return _new_render(scene, job, seed, image)
        if job.status != Job.Status.REVIEW:
            raise _still_making(job.pk)
        changes: dict[str, object] = {"seed": seed}
        if image is not None:
            character_id, focus = cast_for_photo(job, image, look=False)
            changes.update(
                image=image,
                character_id=character_id,
                focus_x=focus[0],
                focus_y=focus[1],
            )
        _make_again(scene, job, **changes)
        return job


def regenerate(scene: Scene, seed: int | None = None) -> Job:
    """Make a flagged scene again with a new seed; the job that makes it."""
    try:
        spec = model_spec(scene.model)
    except UnknownModel as exc:
        raise ReviewRefused(str(exc)) from exc
    if not engine_for(spec).seeded:
        raise ReviewRefused(
            f"scene {scene.index} is made by {spec.name}, which makes the same"
            " picture whatever the seed: replace its photo or approve it"
        )
    return _decide(scene, seed=seed if seed is not None else random.getrandbits(31))


def replace(scene: Scene, image: Asset) -> Job:
    """Make a flagged scene again from ``image``, another photo of its project."""
    if image.project_id != scene.project_id or image.kind != Asset.Kind.IMAGE:
        raise ReviewRefused("the new photo must be a photo of the same project")
    return _decide(scene, seed=random.getrandbits(31), image=image)
