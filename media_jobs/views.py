"""Job pages: the job's progress, its stages, its scenes and its result.

The progress block is one partial, ``media_jobs/_job_progress.html``, rendered
from a ``ProgressPayload``-shaped dict (stages included), so the page, the
polling endpoint and the websocket consumer all produce exactly the same
markup. A scene's card is rendered the same way from a ``ScenePayload``-shaped
dict, whether it comes from the database or from a ``job.scene`` message.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from . import control
from .access import get_job_for_user
from .files import stored_file_response
from .models import Job, RunStatus, TaskRun
from .progress import ProgressPayload, ScenePayload, StagePayload, payload_for

PROGRESS_TEMPLATE = "media_jobs/_job_progress.html"
SCENE_TEMPLATE = "media_jobs/_scene_card.html"
SCENES_TEMPLATE = "media_jobs/_scenes.html"

RETRYABLE_STATUSES = (Job.Status.FAILED, Job.Status.CANCELLED)
# The consistency gate's verdict on a scene, as its card's badge says it
# (``Scene.review``; "" when the scene was not checked).
REVIEW_BADGES = {
    "passed": "pass",
    "flagged": "flagged",
    "approved": "approved",
    "redone": "made again",
}


class HtmxHttpRequest(HttpRequest):
    """A request that went through ``django_htmx``'s middleware."""

    htmx: HtmxDetails


def _label(choices: Any, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value


def _stage_context(stage: StagePayload) -> dict[str, Any]:
    progress = float(stage["progress"])
    return {
        **stage,
        "label": stage["name"].capitalize(),
        "status_label": _label(RunStatus, stage["status"]),
        "percent": round(progress * 100),
    }


def progress_context(
    payload: ProgressPayload,
    *,
    oob: bool = False,
    live: bool = False,
    action_error: str = "",
) -> dict[str, Any]:
    """Template context of the progress partial, from the payload alone.

    ``oob`` marks the block for htmx's out-of-band swap (websocket messages);
    ``live`` says the block replaces one already on the page, so it may offer
    a reload link once the job has finished. ``action_error`` is why a cancel
    or retry was refused.
    """
    job_id = payload["job"]
    status = payload["status"]
    progress = float(payload["progress"])
    stages = payload.get("stages")
    return {
        "p": {
            "job": job_id,
            "status": status,
            "status_label": _label(Job.Status, status),
            "stage": payload["stage"],
            "progress": progress,
            "percent": round(progress * 100),
            "message": payload["message"],
            "error": payload["error"],
            "is_active": status in Job.ACTIVE_STATUSES,
            "can_cancel": status in Job.CANCELLABLE_STATUSES,
            "in_review": status == Job.Status.REVIEW,
            "can_retry": status in RETRYABLE_STATUSES,
        },
        "stages": [_stage_context(s) for s in stages] if stages else None,
        # Beside the progress block, the stages are swapped out of band
        # whenever the progress block replaces one already on the page.
        "stages_oob": oob or live,
        "poll_url": reverse("jobs:progress", args=[job_id]),
        "detail_url": reverse("jobs:detail", args=[job_id]),
        "cancel_url": reverse("jobs:cancel", args=[job_id]),
        "retry_url": reverse("jobs:retry", args=[job_id]),
        "action_error": action_error,
        "oob": oob,
        "live": live,
    }


def render_progress_html(payload: ProgressPayload, *, oob: bool = False) -> str:
    """The progress partial as HTML; used by the websocket consumer (no DB query)."""
    return render_to_string(
        PROGRESS_TEMPLATE, progress_context(payload, oob=oob, live=True)
    )


def render_scene_html(payload: ScenePayload) -> str:
    """One scene's state (thumbnail, status, worker, time, error) as an
    out-of-band swap into its card (websocket messages; no DB query)."""
    return render_to_string(
        SCENE_TEMPLATE, {"s": _scene_card(payload), "oob": True, "state_only": True}
    )


def _scene_card(payload: ScenePayload, **extra: Any) -> dict[str, Any]:
    return {
        **payload,
        **extra,
        "status_label": _label(RunStatus, payload["status"]),
        "preview_url": (
            reverse("jobs:scene_preview", args=[payload["scene"]])
            if payload["has_thumbnail"]
            else ""
        ),
    }


def scene_cards(job: Job) -> list[dict[str, Any]]:
    """Every scene of the job as a card: its ``ScenePayload`` and what the
    page shows besides (photo, move, cut times, transition). Two queries."""
    runs = {
        run["scene_index"]: run
        for run in TaskRun.objects.filter(job=job, scene_index__isnull=False).values(
            "scene_index", "worker", "queue"
        )
    }
    scenes = list(job.scenes.select_related("image").order_by("index"))
    cards = []
    for position, scene in enumerate(scenes):
        run = runs.get(scene.index, {})
        payload = ScenePayload(
            type="job.scene",
            job=job.pk,
            scene=scene.pk,
            index=scene.index,
            status=scene.status,
            cached=scene.cached,
            has_thumbnail=bool(scene.thumbnail),
            seconds=scene.seconds,
            worker=run.get("worker", ""),
            queue=run.get("queue", ""),
            error=scene.error,
        )
        cards.append(
            _scene_card(
                payload,
                start=scene.start,
                end=scene.end,
                image_name=scene.image.original_name,
                move=scene.move,
                transition=scene.transition,
                transition_frames=scene.transition_frames,
                is_last=position == len(scenes) - 1,
                review=scene.review,
                review_label=REVIEW_BADGES.get(scene.review, scene.review),
                consistency=scene.consistency,
                threshold=(scene.gate or {}).get("threshold"),
                tries=scene.tries,
            )
        )
    return cards


def _can_rerender(job: Job) -> bool:
    return job.kind == Job.Kind.RENDER and job.status == Job.Status.SUCCEEDED


def _scenes_context(job: Job, *, oob: bool = False) -> dict[str, Any]:
    can_rerender = _can_rerender(job)
    moves: tuple[str, ...] = ()
    if can_rerender:
        # Imported here: the page of a job under way never needs the engine.
        from workers.assembly.motion import MOVES

        moves = MOVES
    cards = scene_cards(job)
    return {
        "job": job,
        "scene_cards": cards,
        "flagged_count": sum(card["review"] == "flagged" for card in cards),
        "can_rerender": can_rerender,
        "moves": moves,
        "scenes_oob": oob,
    }


def _job_page(
    request: HtmxHttpRequest, job: Job, *, status: int = 200, action_error: str = ""
) -> HttpResponse:
    try:
        result = job.render
    except ObjectDoesNotExist:
        result = None
    context = {
        "job": job,
        "project": job.project,
        "result": result,
        **_scenes_context(job),
        **progress_context(payload_for(job), action_error=action_error),
    }
    return render(request, "media_jobs/job_detail.html", context, status=status)


def _live_partial(
    request: HtmxHttpRequest, job: Job, *, status: int = 200, action_error: str = ""
) -> HttpResponse:
    """What htmx swaps in: the progress block (with its stages out of band)
    and the scene cards out of band, so polling alone keeps the page live."""
    progress = render_to_string(
        PROGRESS_TEMPLATE,
        progress_context(payload_for(job), live=True, action_error=action_error),
        request=request,
    )
    scenes = render_to_string(
        SCENES_TEMPLATE, _scenes_context(job, oob=True), request=request
    )
    return HttpResponse(progress + scenes, status=status)


@login_required
@require_GET
def job_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    job = get_job_for_user(request, pk)
    return _job_page(request, job)


@login_required
@require_GET
def job_progress(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The polling fallback: the progress partial (and the stages and scenes
    out of band) for htmx, the whole page otherwise."""
    job = get_job_for_user(request, pk)
    if request.htmx:
        return _live_partial(request, job)
    return _job_page(request, job)


def see_other(url: str) -> HttpResponseRedirect:
    """After a POST, the browser GETs the page (303, never a repeated POST)."""
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def _job_action(
    request: HtmxHttpRequest, pk: int, action: Any, done: str
) -> HttpResponse:
    job = get_job_for_user(request, pk)
    try:
        action(job)
    except control.JobActionRefused as exc:
        job.refresh_from_db()
        if request.htmx:
            return _live_partial(request, job, status=409, action_error=str(exc))
        return _job_page(request, job, status=409, action_error=str(exc))
    job.refresh_from_db()
    if request.htmx:
        return _live_partial(request, job)
    messages.success(request, done.format(pk=job.pk))
    return see_other(reverse("jobs:detail", args=[job.pk]))


@login_required
@require_POST
def job_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Cancel a queued or running job (``control.cancel``)."""
    return _job_action(request, pk, control.cancel, "Job #{pk} was cancelled.")


@login_required
@require_POST
def job_retry(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Queue a failed or cancelled job again (``control.retry``)."""
    return _job_action(request, pk, control.retry, "Job #{pk} was queued again.")


@login_required
@require_POST
def scene_rerender(request: HtmxHttpRequest, pk: int, index: int) -> HttpResponse:
    """Make one scene of a finished render again (a new seed, and the move
    chosen, if any) as a new job; every other scene comes from the cache."""
    from projects.pipeline import RenderNotReady, SceneNotFound, rerender_scene

    job = get_job_for_user(request, pk)
    move = request.POST.get("move", "").strip() or None
    try:
        child = rerender_scene(job, index, move=move)
    except SceneNotFound as exc:
        raise Http404(str(exc)) from exc
    except RenderNotReady as exc:
        if request.htmx:
            html = format_html(
                '<p class="error" role="alert" id="scene-{}-action">{}</p>', index, exc
            )
            return HttpResponse(html, status=409)
        return _job_page(request, job, status=409, action_error=str(exc))
    url = reverse("jobs:detail", args=[child.pk])
    if request.htmx:
        return HttpResponseClientRedirect(url)
    messages.success(
        request, f"Scene {index} is being made again in render #{child.pk}."
    )
    return see_other(url)


@login_required
@require_GET
def scene_preview(request: HtmxHttpRequest, pk: int) -> FileResponse:
    """A scene's JPEG preview; only its job's owner sees it."""
    scene_model = apps.get_model("projects", "Scene")
    scene = get_object_or_404(
        scene_model.objects.filter(job__owner=request.user).only("thumbnail", "index"),
        pk=pk,
    )
    return stored_file_response(
        scene.thumbnail,
        "image/jpeg",
        filename=f"scene-{scene.index}.jpg",
        as_attachment=False,
    )
