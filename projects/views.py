"""Project pages: list and create projects, edit settings, upload material,
start a render and watch, play and download the results.

Every view takes the typed ``HtmxHttpRequest``: an htmx request gets the
partial it swaps, any other request the whole page (or a redirect after a
POST), so each page works without JavaScript too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from media_jobs.models import Job
from media_jobs.views import HtmxHttpRequest
from studio_site.upload_limits import upload_rejections

from .access import (
    get_asset_for_user,
    get_project_for_user,
    get_render_for_user,
    projects_for_user,
)
from .analysis import AUDIO_ENGINE_VERSION, analysis_svg, find_analysis
from .forms import CharacterChoiceForm, ProjectForm, UploadForm
from .models import Asset, AudioAnalysis, Project
from .pipeline import RenderInProgress, RenderNotReady, start_render
from .removal import AssetInUse, ProjectBusy, remove_asset, remove_project
from .responses import (
    asset_response,
    render_download_name,
    render_thumbnail_response,
    render_video_response,
    svg_response,
)
from .uploads import UploadRejected, accept_upload

JOBS_SHOWN = 20


@dataclass(frozen=True)
class FileNote:
    """What happened to one file of an upload (or a deletion), shown beside the list."""

    name: str
    ok: bool
    message: str


# --- context builders -----------------------------------------------------------


def _asset_rows(project: Project) -> list[tuple[Asset, AudioAnalysis | None]]:
    """The project's assets, each audio asset with its analysis when one exists."""
    assets = list(project.assets.order_by("created_at", "id"))
    audio_hashes = [a.sha256 for a in assets if a.kind == Asset.Kind.AUDIO]
    analyses: dict[str, AudioAnalysis] = {}
    # Oldest first, so the newest analysis of a song (a newer engine) wins.
    stored = AudioAnalysis.objects.filter(
        sha256__in=audio_hashes, engine_version=AUDIO_ENGINE_VERSION
    )
    for analysis in stored.order_by("created_at", "id"):
        analyses[analysis.sha256] = analysis
    return [(asset, analyses.get(asset.sha256)) for asset in assets]


def _assets_context(
    project: Project,
    *,
    upload_form: UploadForm | None = None,
    notes: list[FileNote] | None = None,
) -> dict[str, Any]:
    return {
        "project": project,
        "asset_rows": _asset_rows(project),
        "upload_form": upload_form or UploadForm(),
        "notes": notes or [],
    }


def _settings_context(
    project: Project,
    *,
    form: ProjectForm | None = None,
    saved: bool = False,
    character_form: CharacterChoiceForm | None = None,
    character_saved: bool = False,
) -> dict[str, Any]:
    """The settings partial: the project's settings and its character."""
    return {
        "project": project,
        "form": form or ProjectForm(instance=project),
        "saved": saved,
        "character_form": character_form
        or CharacterChoiceForm(instance=project, owner=project.owner),
        "character_saved": character_saved,
    }


def _detail_context(
    project: Project,
    *,
    form: ProjectForm | None = None,
    saved: bool = False,
    upload_form: UploadForm | None = None,
    notes: list[FileNote] | None = None,
    render_error: str = "",
    character_form: CharacterChoiceForm | None = None,
) -> dict[str, Any]:
    return {
        **_assets_context(project, upload_form=upload_form, notes=notes),
        **_settings_context(
            project, form=form, saved=saved, character_form=character_form
        ),
        "render_error": render_error,
        "jobs": list(project.jobs.order_by("-created_at", "-id")[:JOBS_SHOWN]),
        "renders": list(
            project.renders.select_related("job").order_by("-created_at", "-id")
        ),
    }


def _detail_page(
    request: HtmxHttpRequest, project: Project, *, status: int = 200, **extra: Any
) -> HttpResponse:
    return render(
        request,
        "projects/project_detail.html",
        _detail_context(project, **extra),
        status=status,
    )


def _list_page(
    request: HtmxHttpRequest, form: ProjectForm, *, status: int = 200
) -> HttpResponse:
    projects = projects_for_user(request.user).annotate(asset_count=Count("assets"))
    return render(
        request,
        "projects/project_list.html",
        {"projects": projects, "form": form},
        status=status,
    )


def _detail_url(project: Project) -> str:
    return reverse("projects:detail", args=[project.pk])


# --- projects -------------------------------------------------------------------


@login_required
@require_GET
def project_list(request: HtmxHttpRequest) -> HttpResponse:
    return _list_page(request, ProjectForm())


@login_required
@require_http_methods(["GET", "POST"])
def project_create(request: HtmxHttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _list_page(request, ProjectForm())
    form = ProjectForm(request.POST)
    if not form.is_valid():
        return _list_page(request, form, status=400)
    project = form.save(commit=False)
    project.owner = request.user
    project.save()
    messages.success(
        request, f"Created “{project.title}”. Now upload photos and a song."
    )
    if request.htmx:
        return HttpResponseClientRedirect(_detail_url(project))
    return redirect(_detail_url(project))


@login_required
@require_GET
def project_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request, pk)
    return _detail_page(request, project)


@login_required
@require_http_methods(["GET", "POST"])
def project_update(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request, pk)
    if request.method != "POST":
        form = ProjectForm(instance=project)
        if request.htmx:
            return render(
                request, "projects/_settings.html", _settings_context(project)
            )
        return _detail_page(request, project, form=form)
    form = ProjectForm(request.POST, instance=project)
    if form.is_valid():
        form.save()
        if request.htmx:
            return render(
                request,
                "projects/_settings.html",
                _settings_context(project, saved=True),
            )
        messages.success(request, "Settings saved.")
        return redirect(_detail_url(project))
    if request.htmx:
        return render(
            request,
            "projects/_settings.html",
            _settings_context(project, form=form),
            status=400,
        )
    return _detail_page(request, project, form=form, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def project_character(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Choose the project's character (one of the owner's own), Quick mode,
    and what a render does with scenes that fail the consistency check."""
    project = get_project_for_user(request, pk)
    if request.method != "POST":
        if request.htmx:
            return render(
                request, "projects/_settings.html", _settings_context(project)
            )
        return _detail_page(request, project)
    form = CharacterChoiceForm(request.POST, instance=project, owner=request.user)
    if form.is_valid():
        form.save()
        if request.htmx:
            return render(
                request,
                "projects/_settings.html",
                _settings_context(project, character_saved=True),
            )
        messages.success(request, "Character saved.")
        return redirect(_detail_url(project))
    project.refresh_from_db()
    if request.htmx:
        return render(
            request,
            "projects/_settings.html",
            _settings_context(project, character_form=form),
            status=400,
        )
    return _detail_page(request, project, character_form=form, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def project_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request, pk)
    if request.method != "POST":
        return render(
            request,
            "projects/project_confirm_delete.html",
            {
                "project": project,
                "active_job": project.jobs.filter(
                    status__in=Job.ACTIVE_STATUSES
                ).first(),
            },
        )
    title = project.title
    try:
        remove_project(project)
    except ProjectBusy as exc:
        # Back to the project, where its jobs are listed with their progress.
        messages.error(request, str(exc))
        url = _detail_url(project)
    else:
        messages.success(request, f"Deleted “{title}” and its files.")
        url = reverse("projects:list")
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


# --- assets ---------------------------------------------------------------------


@login_required
@require_POST
def project_upload(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Add each uploaded file on its own: a rejected file is reported and the
    accepted ones beside it are kept."""
    project = get_project_for_user(request, pk)
    form = UploadForm(request.POST, request.FILES)
    # Files the upload handler dropped for their size never reach the form.
    notes = [
        FileNote(name=name, ok=False, message=message)
        for name, message in upload_rejections(request)
    ]
    if form.is_valid():
        for upload in form.cleaned_data["files"]:
            name = upload.name or "file"
            try:
                asset = accept_upload(project, upload)
            except UploadRejected as exc:
                notes.append(FileNote(name=name, ok=False, message=str(exc)))
            else:
                kind = asset.get_kind_display()
                message = f"{asset.original_name} added ({kind})."
                notes.append(
                    FileNote(name=asset.original_name, ok=True, message=message)
                )
    elif not notes:
        # "Choose a file" only when none was sent; a refused one has its note.
        notes.extend(
            FileNote(name="", ok=False, message=error)
            for error in form.errors.get("files", [])
        )
    # 400 only when nothing at all was stored, so a client can tell "all failed".
    status = 200 if any(note.ok for note in notes) else 400
    if request.htmx:
        return render(
            request,
            "projects/_assets.html",
            _assets_context(project, notes=notes),
            status=status,
        )
    for note in notes:
        (messages.success if note.ok else messages.error)(request, note.message)
    return redirect(_detail_url(project))


@login_required
@require_POST
def asset_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    asset = get_asset_for_user(request, pk)
    project = asset.project
    name = asset.original_name
    try:
        remove_asset(asset)
    except AssetInUse as exc:
        note = FileNote(name=name, ok=False, message=str(exc))
        status = 409
    else:
        note = FileNote(name=name, ok=True, message=f"Removed {name}.")
        status = 200
    if request.htmx:
        return render(
            request,
            "projects/_assets.html",
            _assets_context(project, notes=[note]),
            status=status,
        )
    (messages.success if note.ok else messages.error)(request, note.message)
    return redirect(_detail_url(project))


@login_required
@require_GET
def asset_file(request: HtmxHttpRequest, pk: int) -> FileResponse:
    return asset_response(get_asset_for_user(request, pk))


@login_required
@require_GET
def asset_analysis_svg(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The picture of an uploaded song: waveform, beats, sections, energy."""
    asset = get_asset_for_user(request, pk)
    analysis = find_analysis(asset.sha256) if asset.kind == Asset.Kind.AUDIO else None
    if analysis is None:
        raise Http404("This song has not been analysed yet.")
    return svg_response(analysis_svg(analysis))


# --- renders --------------------------------------------------------------------


@login_required
@require_POST
def project_render(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request, pk)
    try:
        job = start_render(project)
    except RenderInProgress as exc:
        # A double click must not start two renders: show the one under way.
        messages.info(request, "A render of this project is already under way.")
        job = exc.job
    except RenderNotReady as exc:
        if request.htmx:
            return render(
                request,
                "projects/_render_panel.html",
                {"project": project, "render_error": str(exc)},
                status=400,
            )
        messages.error(request, str(exc))
        return redirect(_detail_url(project))
    url = reverse("jobs:detail", args=[job.pk])
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


@login_required
@require_GET
def render_file(request: HtmxHttpRequest, pk: int) -> FileResponse:
    """The rendered video; ``?download=1`` asks the browser to save it."""
    render_row = get_render_for_user(request, pk)
    return render_video_response(render_row, download=bool(request.GET.get("download")))


@login_required
@require_GET
def render_thumbnail(request: HtmxHttpRequest, pk: int) -> FileResponse:
    return render_thumbnail_response(get_render_for_user(request, pk))


@login_required
@require_GET
def render_manifest(request: HtmxHttpRequest, pk: int) -> JsonResponse:
    """What the render was made of: scenes, cut times, models, seeds, timings."""
    render_row = get_render_for_user(request, pk)
    response = JsonResponse(render_row.manifest, json_dumps_params={"indent": 2})
    if request.GET.get("download"):
        name = render_download_name(render_row, "-manifest.json")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
