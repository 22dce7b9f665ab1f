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
from django.core.files.storage import default_storage
from django.db.models import Count
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from media_jobs.models import Job
from media_jobs.views import HtmxHttpRequest

from .access import (
    get_asset_for_user,
    get_project_for_user,
    get_render_for_user,
    projects_for_user,
)
from .forms import ProjectForm, UploadForm
from .models import Asset, AudioAnalysis, Project, Render
from .pipeline import RenderNotReady, start_render
from .removal import AssetInUse, remove_asset, remove_project
from .uploads import UploadRejected, add_asset

JOBS_SHOWN = 20
VIDEO_CONTENT_TYPES = {"mp4": "video/mp4", "webm": "video/webm", "gif": "image/gif"}


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
    for analysis in AudioAnalysis.objects.filter(sha256__in=audio_hashes).order_by(
        "created_at", "id"
    ):
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


def _detail_context(
    project: Project,
    *,
    form: ProjectForm | None = None,
    saved: bool = False,
    upload_form: UploadForm | None = None,
    notes: list[FileNote] | None = None,
    render_error: str = "",
) -> dict[str, Any]:
    return {
        **_assets_context(project, upload_form=upload_form, notes=notes),
        "form": form or ProjectForm(instance=project),
        "saved": saved,
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
                request, "projects/_settings.html", {"project": project, "form": form}
            )
        return _detail_page(request, project, form=form)
    form = ProjectForm(request.POST, instance=project)
    if form.is_valid():
        form.save()
        if request.htmx:
            return render(
                request,
                "projects/_settings.html",
                {
                    "project": project,
                    "form": ProjectForm(instance=project),
                    "saved": True,
                },
            )
        messages.success(request, "Settings saved.")
        return redirect(_detail_url(project))
    if request.htmx:
        return render(
            request,
            "projects/_settings.html",
            {"project": project, "form": form},
            status=400,
        )
    return _detail_page(request, project, form=form, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def project_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request, pk)
    if request.method != "POST":
        return render(
            request, "projects/project_confirm_delete.html", {"project": project}
        )
    title = project.title
    remove_project(project)
    messages.success(request, f"Deleted “{title}” and its files.")
    if request.htmx:
        return HttpResponseClientRedirect(reverse("projects:list"))
    return redirect("projects:list")


# --- assets ---------------------------------------------------------------------


@login_required
@require_POST
def project_upload(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Add each uploaded file on its own: a rejected file is reported and the
    accepted ones beside it are kept."""
    project = get_project_for_user(request, pk)
    form = UploadForm(request.POST, request.FILES)
    notes: list[FileNote] = []
    if form.is_valid():
        for upload in form.cleaned_data["files"]:
            name = upload.name or "file"
            try:
                asset = add_asset(project, upload)
            except UploadRejected as exc:
                notes.append(FileNote(name=name, ok=False, message=str(exc)))
            else:
                kind = asset.get_kind_display()
                message = f"{asset.original_name} added ({kind})."
                notes.append(
                    FileNote(name=asset.original_name, ok=True, message=message)
                )
    else:
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


def _protect(response: FileResponse) -> FileResponse:
    # Stored files are user material: never let a browser sniff them into
    # something executable, and sandbox them if one is opened directly.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = (
        "default-src 'none'; media-src 'self'; sandbox"
    )
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
@require_GET
def asset_file(request: HtmxHttpRequest, pk: int) -> FileResponse:
    asset = get_asset_for_user(request, pk)
    try:
        handle = default_storage.open(asset.file.name, "rb")
    except FileNotFoundError as exc:
        raise Http404("The stored file is missing.") from exc
    return _protect(
        FileResponse(
            handle,
            content_type=asset.mime,
            # Images and audio play inline on the project page; a document is
            # only ever downloaded.
            as_attachment=asset.kind == Asset.Kind.DOCUMENT,
            filename=asset.original_name,
        )
    )


# --- renders --------------------------------------------------------------------


@login_required
@require_POST
def project_render(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request, pk)
    active = project.jobs.filter(
        kind=Job.Kind.RENDER, status__in=Job.ACTIVE_STATUSES
    ).first()
    if active is not None:
        # A double click must not start two renders of the same project.
        messages.info(request, "A render of this project is already under way.")
        job = active
    else:
        try:
            job = start_render(project)
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


def _download_name(render_row: Render, suffix: str) -> str:
    stem = slugify(render_row.project.title) or "render"
    return f"{stem}-{render_row.pk}{suffix}"


def _stored_response(
    name: str, content_type: str, *, filename: str, as_attachment: bool
) -> FileResponse:
    if not name:
        raise Http404("This render has no such file.")
    try:
        handle = default_storage.open(name, "rb")
    except FileNotFoundError as exc:
        raise Http404("The stored file is missing.") from exc
    return _protect(
        FileResponse(
            handle,
            content_type=content_type,
            as_attachment=as_attachment,
            filename=filename,
        )
    )


@login_required
@require_GET
def render_file(request: HtmxHttpRequest, pk: int) -> FileResponse:
    """The rendered video; ``?download=1`` asks the browser to save it."""
    render_row = get_render_for_user(request, pk)
    fmt = render_row.output_format
    return _stored_response(
        render_row.file,
        VIDEO_CONTENT_TYPES.get(fmt, "application/octet-stream"),
        filename=_download_name(render_row, f".{fmt}"),
        as_attachment=bool(request.GET.get("download")),
    )


@login_required
@require_GET
def render_thumbnail(request: HtmxHttpRequest, pk: int) -> FileResponse:
    render_row = get_render_for_user(request, pk)
    return _stored_response(
        render_row.thumbnail,
        "image/jpeg",
        filename=_download_name(render_row, ".jpg"),
        as_attachment=False,
    )


@login_required
@require_GET
def render_manifest(request: HtmxHttpRequest, pk: int) -> JsonResponse:
    """What the render was made of: scenes, cut times, models, seeds, timings."""
    render_row = get_render_for_user(request, pk)
    response = JsonResponse(render_row.manifest, json_dumps_params={"indent": 2})
    if request.GET.get("download"):
        name = _download_name(render_row, "-manifest.json")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
