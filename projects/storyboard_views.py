"""Quick mode and the storyboard pages: make a video from material in one
form; see the planned scenes with their prompts; plan the storyboard again;
edit one scene (which turns the project to Advanced mode)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from media_jobs.files import delete_file
from media_jobs.models import Job
from media_jobs.views import HtmxHttpRequest, see_other
from workers.storyboard.prompts import STAGES

from .access import get_project_for_user
from .models import Asset, Project, Shot, Storyboard, StylePreset
from .pipeline import RenderInProgress, RenderNotReady, start_render, start_storyboard
from .storyboard_forms import PlanForm, QuickForm, ShotEditForm
from .storyboards import StoryboardError, edit_shot
from .uploads import UploadRejected, accept_upload

POLL_SECONDS = 2


def _storyboard_url(project: Project) -> str:
    return reverse("projects:storyboard", args=[project.pk])


def _redirect(request: HtmxHttpRequest, url: str) -> HttpResponse:
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return see_other(url)


# --- Quick mode -------------------------------------------------------------------


def _style_cards(form: QuickForm) -> list[dict[str, Any]]:
    """The style radio buttons with each preset's name and description."""
    described = dict(StylePreset.objects.values_list("key", "description"))
    return [
        {"widget": radio, "description": described.get(radio.data["value"], "")}
        for radio in form["style"]
    ]


def _quick_page(
    request: HtmxHttpRequest, form: QuickForm, *, error: str = "", status: int = 200
) -> HttpResponse:
    return render(
        request,
        "projects/quick.html",
        {"form": form, "style_cards": _style_cards(form), "error": error},
        status=status,
    )


class _Refused(Exception):
    """Undo the half-made Quick project: the message says why."""


def _accept(project: Project, upload: Any, kind: str, what: str) -> Asset:
    asset = accept_upload(project, upload)
    if asset.kind != kind:
        # Stored already: the rollback keeps the row out, the caller the file.
        raise _Refused(f"{asset.original_name}: this is not {what}.", asset.file.name)
    return asset


@login_required
@require_http_methods(["GET", "POST"])
def quick(request: HtmxHttpRequest) -> HttpResponse:
    """Photos, a song, a style and a length: the studio plans and renders
    everything else, then shows the storyboard it planned."""
    if request.method != "POST":
        return _quick_page(request, QuickForm())
    form = QuickForm(request.POST, request.FILES)
    if not form.is_valid():
        return _quick_page(request, form, status=400)
    data = form.cleaned_data
    stored: list[str] = []
    try:
        # One transaction: a refused file leaves no project, asset or job
        # (jobs are sent only on commit); stored files are removed below.
        with transaction.atomic():
            project = Project.objects.create(
                owner=request.user,
                title=data["title"] or "Quick video",
                mode=Project.Mode.QUICK,
                auto_character=True,
                style=data["style"],
                target_duration=data["duration"],
            )
            uploads = [(f, Asset.Kind.IMAGE, "a photo") for f in data["photos"]]
            uploads.append((data["song"], Asset.Kind.AUDIO, "a song"))
            if data["script"]:
                uploads.append((data["script"], Asset.Kind.DOCUMENT, "a script"))
            for upload, kind, what in uploads:
                try:
                    asset = _accept(project, upload, kind, what)
                except _Refused as exc:
                    stored.append(exc.args[1])
                    raise
                stored.append(asset.file.name)
            start_render(project)
    except (UploadRejected, RenderNotReady, _Refused) as exc:
        for name in stored:
            delete_file(name)
        return _quick_page(request, form, error=str(exc.args[0]), status=400)
    messages.success(
        request, f"Rendering “{project.title}”: its storyboard is planned first."
    )
    return _redirect(request, _storyboard_url(project))


# --- the storyboard ---------------------------------------------------------------


@dataclass(frozen=True)
class ShotRow:
    shot: Shot
    start: float
    end: float
    stages: list[tuple[str, str, str]]  # stage, its text, where it came from


def _rows(board: Storyboard) -> list[ShotRow]:
    rows = []
    for shot in board.shots.select_related("image", "end_image").order_by("index"):
        stages = [
            (
                stage,
                shot.stages.get(stage, ""),
                "off"
                if stage in shot.stages_off
                else shot.stage_sources.get(stage, "template"),
            )
            for stage in STAGES
        ]
        rows.append(ShotRow(shot, shot.start(board.fps), shot.end(board.fps), stages))
    return rows


def _storyboard_page(
    request: HtmxHttpRequest,
    project: Project,
    *,
    plan_form: PlanForm | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    board = Storyboard.objects.filter(project=project).select_related("project").first()
    job = (
        project.jobs.filter(kind=Job.Kind.STORYBOARD)
        .order_by("-created_at", "-id")
        .first()
    )
    planning = job is not None and job.status in Job.ACTIVE_STATUSES
    render_job = (
        project.jobs.filter(kind=Job.Kind.RENDER, status__in=Job.ACTIVE_STATUSES)
        .order_by("-created_at", "-id")
        .first()
    )
    context = {
        "project": project,
        "board": board,
        "rows": _rows(board) if board else [],
        "job": job,
        "planning": planning,
        "render_job": render_job,
        # A Quick render plans its storyboard first: keep looking until it has.
        "poll": planning or (render_job is not None and board is None),
        "poll_seconds": POLL_SECONDS,
        "plan_form": plan_form or PlanForm.for_project(project),
        "error": error,
    }
    return render(request, "projects/storyboard.html", context, status=status)


@login_required
@require_GET
def storyboard(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request, pk)
    return _storyboard_page(request, project)


@login_required
@require_POST
def storyboard_plan(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Plan the storyboard (again) for the settings given, in a job."""
    project = get_project_for_user(request, pk)
    form = PlanForm(request.POST)
    if not form.is_valid():
        return _storyboard_page(request, project, plan_form=form, status=400)
    try:
        start_storyboard(project, **form.overrides())
    except (RenderNotReady, RenderInProgress) as exc:
        return _storyboard_page(
            request, project, plan_form=form, error=str(exc), status=400
        )
    messages.success(request, "Planning the storyboard…")
    return _redirect(request, _storyboard_url(project))


# --- one scene --------------------------------------------------------------------


def _get_shot(project: Project, index: int) -> Shot:
    shot = (
        Shot.objects.filter(storyboard__project=project, index=index)
        .select_related("storyboard", "storyboard__project", "image", "end_image")
        .first()
    )
    if shot is None:
        raise Http404("The storyboard has no such scene.")
    return shot


def _shot_page(
    request: HtmxHttpRequest,
    shot: Shot,
    form: ShotEditForm,
    *,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    board = shot.storyboard
    return render(
        request,
        "projects/shot_edit.html",
        {
            "project": board.project,
            "board": board,
            "shot": shot,
            "start": shot.start(board.fps),
            "end": shot.end(board.fps),
            "form": form,
            "error": error,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def shot_edit(request: HtmxHttpRequest, pk: int, index: int) -> HttpResponse:
    project = get_project_for_user(request, pk)
    shot = _get_shot(project, index)
    if request.method != "POST":
        return _shot_page(request, shot, ShotEditForm(shot=shot))
    form = ShotEditForm(request.POST, shot=shot)
    if not form.is_valid():
        return _shot_page(request, shot, form, status=400)
    changes = form.changes()
    if not changes:
        messages.info(request, f"Scene {shot.index}: nothing changed.")
        return _redirect(request, _storyboard_url(project))
    try:
        edit_shot(shot, changes)
    except StoryboardError as exc:
        # edit_shot may have changed the instance before refusing: show the
        # scene as stored, with the user's input kept in the form.
        stored = _get_shot(project, index)
        return _shot_page(
            request,
            stored,
            ShotEditForm(request.POST, shot=stored),
            error=str(exc),
            status=400,
        )
    messages.success(request, f"Scene {shot.index} saved.")
    return _redirect(request, _storyboard_url(project))
