"""The review queue page: every scene of the user that failed the
consistency check on all its attempts, with what the check saw (per-frame
scores against the threshold, the reason, the attempts) and the three
decisions of ``projects.review``: approve, regenerate, replace.

Each decision is a plain form that htmx upgrades: an htmx request gets the
scene's card back (what happened, or why it was refused), any other request
a redirect to the queue (or the queue with the refusal, 409).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from media_jobs.models import Job
from media_jobs.views import HtmxHttpRequest, see_other
from studio_site.upload_limits import upload_rejections

from .access import get_scene_for_user
from .models import Asset, Scene
from .review import (
    ReviewRefused,
    approve,
    check_decidable,
    regenerate,
    replace,
    review_queue,
)
from .uploads import UploadRejected, accept_upload

MAX_SEED = 2**62


class BadDecision(ValueError):
    """The form itself is wrong (no photo chosen, a seed that is not a
    number); the message says what."""


# --- scoping ---------------------------------------------------------------------


# --- what the gate saw -----------------------------------------------------------


def frame_verdict(score: float | None, threshold: float | None) -> str:
    if score is None:
        return "no face"
    if threshold is None:
        return ""
    return "pass" if score >= threshold else "fail"


def frame_rows(gate: dict[str, Any]) -> list[dict[str, Any]]:
    """Each frame the gate looked at: time, score and its verdict against
    the threshold; ``first_failure`` marks where the scene switches person."""
    threshold = gate.get("threshold")
    failure = (gate.get("failure") or {}).get("frame")
    return [
        {
            "frame": frame.get("frame"),
            "time": frame.get("time"),
            "score": frame.get("score"),
            "faces": frame.get("faces"),
            "sampled": frame.get("sampled", True),
            "verdict": frame_verdict(frame.get("score"), threshold),
            "first_failure": failure is not None and frame.get("frame") == failure,
        }
        for frame in gate.get("frames") or []
    ]


def review_card(scene: Scene, photos: list[Asset], **extra: Any) -> dict[str, Any]:
    gate = scene.gate or {}
    return {
        "scene": scene,
        "preview_url": (
            reverse("jobs:scene_preview", args=[scene.pk]) if scene.thumbnail else ""
        ),
        "threshold": gate.get("threshold"),
        "presence": gate.get("presence"),
        "reason": gate.get("reason", ""),
        "failure": gate.get("failure"),
        "frames": frame_rows(gate),
        "attempts": gate.get("attempts") or [],
        # Another photo of the same project to make the scene from.
        "photos": [photo for photo in photos if photo.pk != scene.image_id],
        "held": scene.job.status == Job.Status.REVIEW,
        **extra,
    }


def review_cards(scenes: list[Scene]) -> list[dict[str, Any]]:
    photos: dict[int, list[Asset]] = {}
    images = Asset.objects.filter(
        project_id__in={scene.project_id for scene in scenes}, kind=Asset.Kind.IMAGE
    ).order_by("created_at", "id")
    for image in images:
        photos.setdefault(image.project_id, []).append(image)
    return [review_card(scene, photos.get(scene.project_id, [])) for scene in scenes]


def _card(scene: Scene, **extra: Any) -> dict[str, Any]:
    scene.refresh_from_db()
    return review_card(scene, list(scene.project.images()), **extra)


# --- pages -----------------------------------------------------------------------


def _queue_page(
    request: HtmxHttpRequest, *, status: int = 200, action_error: str = ""
) -> HttpResponse:
    scenes = list(review_queue(request.user))
    context = {"cards": review_cards(scenes), "action_error": action_error}
    template = (
        "projects/_review_queue.html" if request.htmx else "projects/review_queue.html"
    )
    return render(request, template, context, status=status)


@login_required
@require_GET
def review_queue_page(request: HtmxHttpRequest) -> HttpResponse:
    return _queue_page(request)


def review_count_context(request: HttpRequest) -> dict[str, Any]:
    """Context processor: the number of scenes waiting for the user's
    review, for the link in the navigation (one count query per page)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"review_count": review_queue(user).count()}


def _decided(
    request: HtmxHttpRequest, scene: Scene, message: str, job: Job | None
) -> HttpResponse:
    if request.htmx:
        return render(
            request,
            "projects/_review_done.html",
            {
                "scene": scene,
                "message": message,
                "job": job,
                "review_count": review_queue(request.user).count(),
            },
        )
    messages.success(request, message)
    return see_other(reverse("projects:review_queue"))


def _refused(
    request: HtmxHttpRequest, scene: Scene, error: str, *, status: int
) -> HttpResponse:
    if request.htmx:
        return render(
            request,
            "projects/_review_card.html",
            {"card": _card(scene, error=error)},
            status=status,
        )
    return _queue_page(
        request, status=status, action_error=f"Scene {scene.index}: {error}"
    )


def _remade_message(scene: Scene, job: Job) -> str:
    if job.pk != scene.job_id:
        return f"Scene {scene.index} is being made again in a new render, #{job.pk}."
    job.refresh_from_db(fields=["status"])
    if job.status == Job.Status.REVIEW:
        return (
            f"Scene {scene.index} will be made again in render #{job.pk} once its"
            " other flagged scenes are decided."
        )
    return f"Scene {scene.index} is being made again in render #{job.pk}."


@login_required
@require_POST
def review_approve(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Keep the scene as it is; a held render whose last flagged scene this
    was goes on to its assembly."""
    scene = get_scene_for_user(request, pk)
    try:
        approve(scene)
    except ReviewRefused as exc:
        return _refused(request, scene, str(exc), status=409)
    job = Job.objects.get(pk=scene.job_id)
    message = f"Scene {scene.index} of “{scene.project.title}” approved."
    if job.status in Job.ACTIVE_STATUSES:
        message += f" Render #{job.pk} goes on."
    return _decided(request, scene, message, job)


def _seed(request: HtmxHttpRequest) -> int | None:
    text = request.POST.get("seed", "").strip()
    if not text:
        return None
    try:
        seed = int(text)
    except ValueError:
        raise BadDecision("the seed must be a whole number") from None
    if not 0 <= seed <= MAX_SEED:
        raise BadDecision(f"the seed must be between 0 and {MAX_SEED}")
    return seed


@login_required
@require_POST
def review_regenerate(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Make the scene again with a new seed (the one given, or a random one)."""
    scene = get_scene_for_user(request, pk)
    try:
        job = regenerate(scene, seed=_seed(request))
    except BadDecision as exc:
        return _refused(request, scene, str(exc), status=400)
    except ReviewRefused as exc:
        return _refused(request, scene, str(exc), status=409)
    return _decided(request, scene, _remade_message(scene, job), job)


def _new_photo(request: HtmxHttpRequest, scene: Scene) -> Asset:
    """The photo to make the scene from: an upload (added to the project
    like any upload) or one of the project's photos."""
    upload = request.FILES.get("photo")
    refused = upload_rejections(request)
    if refused:  # dropped on arrival for its size
        raise BadDecision(refused[0][1])
    if upload is not None:
        check_decidable(scene)  # before the upload is stored
        try:
            asset = accept_upload(scene.project, upload)
        except UploadRejected as exc:
            raise BadDecision(str(exc)) from exc
        if asset.kind != Asset.Kind.IMAGE:
            # Stored like any upload (a song is analysed, a script kept);
            # it just cannot be a scene's photo.
            raise BadDecision(
                f"{asset.original_name} was added to the project's material,"
                " but it is not a photo"
            )
        return asset
    image_id = request.POST.get("image", "").strip()
    if not image_id.isdigit():
        raise BadDecision("choose a photo of the project or upload one")
    asset = scene.project.assets.filter(pk=int(image_id), kind=Asset.Kind.IMAGE).first()
    if asset is None:
        raise BadDecision("the project has no such photo")
    return asset


@login_required
@require_POST
def review_replace(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Make the scene again from another photo of its project."""
    scene = get_scene_for_user(request, pk)
    try:
        job = replace(scene, _new_photo(request, scene))
    except BadDecision as exc:
        return _refused(request, scene, str(exc), status=400)
    except ReviewRefused as exc:
        return _refused(request, scene, str(exc), status=409)
    return _decided(request, scene, _remade_message(scene, job), job)
