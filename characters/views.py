"""Character pages: the gallery, a new character from several photos, a
character's references (with why each was accepted or not), its identity,
its registration's progress and the scenes checked against it.

Reference photos and face crops are biometric data: they are served only by
the owner-checked views below, never from a public media URL. The embeddings
are never shown at all.

This app may not import ``projects`` (projects imports characters): the
scenes checked against a character are read through the reverse relation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import FileResponse, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from media_jobs.files import stored_file_response
from media_jobs.models import Job
from media_jobs.views import REVIEW_BADGES, HtmxHttpRequest, see_other
from studio_site.upload_limits import upload_rejections

from .access import characters_for_user, get_character_for_user, get_reference_for_user
from .forms import CharacterSettingsForm, NewCharacterForm, ReferenceUploadForm
from .jobs import registrations, start_registration
from .models import MAX_REFERENCES, Character, ReferenceImage
from .registration import (
    ReferenceRefused,
    add_reference_upload,
    create_character,
    delete_character,
    rebuild_identity,
    remove_reference,
    threshold_of,
)

SCENES_SHOWN = 200


@dataclass(frozen=True)
class FileNote:
    """What happened to one photo of an upload (or a removal)."""

    name: str
    ok: bool
    message: str


def add_photos(character: Character, uploads: list[Any]) -> list[FileNote]:
    """Add each upload as a reference on its own; a refused photo gets its
    reason and the others are kept."""
    notes = []
    for upload in uploads:
        name = upload.name or "photo"
        try:
            reference = add_reference_upload(character, upload)
        except ReferenceRefused as exc:
            notes.append(FileNote(name=name, ok=False, message=str(exc)))
        else:
            notes.append(
                FileNote(
                    name=reference.original_name,
                    ok=True,
                    message=f"{reference.original_name} added; it is being checked.",
                )
            )
    return notes


def room_left(character: Character) -> int:
    """How many more photos the character can take (rejected ones aside)."""
    live = character.references.exclude(status=ReferenceImage.Status.REJECTED)
    return max(MAX_REFERENCES - live.count(), 0)


# --- context builders ------------------------------------------------------------


def _registration_context(character: Character) -> dict[str, Any]:
    job = registrations(character).first()
    return {
        "registration": job,
        "registration_active": job is not None and job.status in Job.ACTIVE_STATUSES,
    }


def _references_context(
    character: Character, *, notes: list[FileNote] | None = None
) -> dict[str, Any]:
    references = list(character.references.order_by("created_at", "id"))
    counts = {status: 0 for status in ReferenceImage.Status.values}
    for reference in references:
        counts[reference.status] += 1
    live = len(references) - counts[ReferenceImage.Status.REJECTED]
    return {
        "character": character,
        "references": references,
        "accepted_count": counts[ReferenceImage.Status.ACCEPTED],
        "pending_count": counts[ReferenceImage.Status.PENDING],
        "rejected_count": counts[ReferenceImage.Status.REJECTED],
        "room": max(MAX_REFERENCES - live, 0),
        "max_references": MAX_REFERENCES,
        "threshold_used": threshold_of(character),
        "notes": notes or [],
        **_registration_context(character),
    }


def scene_rows(character: Character) -> list[dict[str, Any]]:
    """The scenes checked against the character, newest render first."""
    scenes = (
        character.scenes.exclude(review="")
        .select_related("project", "job")
        .order_by("-job__created_at", "-job_id", "index")[:SCENES_SHOWN]
    )
    return [
        {
            "scene": scene,
            "verdict": REVIEW_BADGES.get(scene.review, scene.review),
            "threshold": (scene.gate or {}).get("threshold"),
        }
        for scene in scenes
    ]


def _settings_context(
    character: Character,
    *,
    form: CharacterSettingsForm | None = None,
    saved: bool = False,
) -> dict[str, Any]:
    return {
        "character": character,
        "settings_form": form or CharacterSettingsForm(instance=character),
        "saved": saved,
    }


def _detail_page(
    request: HtmxHttpRequest,
    character: Character,
    *,
    status: int = 200,
    notes: list[FileNote] | None = None,
    settings_form: CharacterSettingsForm | None = None,
    upload_form: ReferenceUploadForm | None = None,
) -> HttpResponse:
    context = {
        **_references_context(character, notes=notes),
        **_settings_context(character, form=settings_form),
    }
    context["upload_form"] = upload_form or ReferenceUploadForm(room=context["room"])
    context["scene_rows"] = scene_rows(character)
    context["projects"] = list(character.projects.order_by("title", "id"))
    return render(request, "characters/character_detail.html", context, status=status)


def _references_partial(
    request: HtmxHttpRequest,
    character: Character,
    *,
    status: int = 200,
    notes: list[FileNote] | None = None,
) -> HttpResponse:
    return render(
        request,
        "characters/_references.html",
        _references_context(character, notes=notes),
        status=status,
    )


def _detail_url(character: Character) -> str:
    return reverse("characters:detail", args=[character.pk])


def _show_notes(request: HtmxHttpRequest, notes: list[FileNote]) -> None:
    for note in notes:
        (messages.success if note.ok else messages.error)(request, note.message)


# --- the gallery and a new character ---------------------------------------------


@login_required
@require_GET
def character_list(request: HtmxHttpRequest) -> HttpResponse:
    accepted = Q(references__status=ReferenceImage.Status.ACCEPTED)
    characters = list(
        characters_for_user(request.user).annotate(
            accepted_count=Count("references", filter=accepted),
            total_count=Count("references"),
        )
    )
    # One face crop per character: its first accepted reference that has one.
    covers: dict[int, ReferenceImage] = {}
    faces = (
        ReferenceImage.objects.filter(
            character__in=characters, status=ReferenceImage.Status.ACCEPTED
        )
        .exclude(crop="")
        .order_by("created_at", "id")
    )
    for reference in faces:
        covers.setdefault(reference.character_id, reference)
    rows = [(character, covers.get(character.pk)) for character in characters]
    return render(request, "characters/character_list.html", {"rows": rows})


@login_required
@require_http_methods(["GET", "POST"])
def character_create(request: HtmxHttpRequest) -> HttpResponse:
    """A character from a name and several photos: each photo is added on
    its own (a refused one is reported, the others kept) and the accepted
    ones are checked by a registration job."""
    if request.method != "POST":
        return render(
            request, "characters/character_new.html", {"form": NewCharacterForm()}
        )
    form = NewCharacterForm(request.POST, request.FILES)
    notes = [
        FileNote(name=name, ok=False, message=message)
        for name, message in upload_rejections(request)
    ]
    if not form.is_valid():
        return render(
            request,
            "characters/character_new.html",
            {"form": form, "notes": notes},
            status=400,
        )
    character = create_character(
        request.user,
        form.cleaned_data["name"],
        description=form.cleaned_data["description"],
    )
    notes += add_photos(character, form.cleaned_data["photos"])
    if not any(note.ok for note in notes):
        # Nothing to register: no character without a single photo.
        character.delete()
        return render(
            request,
            "characters/character_new.html",
            {"form": form, "notes": notes},
            status=400,
        )
    job = start_registration(character)
    _show_notes(request, notes)
    messages.info(
        request, f"Created {character.name}; job #{job.pk} checks the photos."
    )
    url = _detail_url(character)
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return see_other(url)


# --- one character -----------------------------------------------------------------


@login_required
@require_GET
def character_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _detail_page(request, get_character_for_user(request, pk))


@login_required
@require_GET
def character_references(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The references, identity and registration block: what the page polls
    while a registration runs; the whole page without htmx."""
    character = get_character_for_user(request, pk)
    if request.htmx:
        return _references_partial(request, character)
    return _detail_page(request, character)


@login_required
@require_http_methods(["GET", "POST"])
def character_update(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Rename the character or set its same-person threshold; a new
    threshold remakes the identity (which references count as this person)."""
    character = get_character_for_user(request, pk)
    if request.method != "POST":
        if request.htmx:
            return render(
                request, "characters/_settings.html", _settings_context(character)
            )
        return _detail_page(request, character)
    old_threshold = character.threshold
    form = CharacterSettingsForm(request.POST, instance=character)
    if not form.is_valid():
        if request.htmx:
            return render(
                request,
                "characters/_settings.html",
                _settings_context(character, form=form),
                status=400,
            )
        return _detail_page(request, character, settings_form=form, status=400)
    character = form.save()
    if character.threshold != old_threshold:
        character = rebuild_identity(character) or character
    if request.htmx:
        return render(
            request,
            "characters/_settings.html",
            _settings_context(character, saved=True),
        )
    messages.success(request, "Saved.")
    return see_other(_detail_url(character))


@login_required
@require_POST
def reference_add(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    character = get_character_for_user(request, pk)
    form = ReferenceUploadForm(request.POST, request.FILES, room=room_left(character))
    notes = [
        FileNote(name=name, ok=False, message=message)
        for name, message in upload_rejections(request)
    ]
    if form.is_valid():
        notes += add_photos(character, form.cleaned_data["photos"])
    elif not notes:
        notes += [
            FileNote(name="", ok=False, message=str(error))
            for error in form.errors.get("photos", [])
        ]
    stored = any(note.ok for note in notes)
    if stored:
        start_registration(character)
    # 400 only when nothing at all was stored, so a client can tell "all failed".
    status = 200 if stored else 400
    if request.htmx:
        return _references_partial(request, character, notes=notes, status=status)
    _show_notes(request, notes)
    return see_other(_detail_url(character))


@login_required
@require_POST
def reference_remove(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The photo, its face crop and its embedding go; the identity is made
    again from the references left."""
    reference = get_reference_for_user(request, pk)
    character = reference.character
    name = reference.original_name
    remove_reference(reference)
    character.refresh_from_db()
    note = FileNote(name=name, ok=True, message=f"Removed {name}.")
    if request.htmx:
        return _references_partial(request, character, notes=[note])
    _show_notes(request, [note])
    return see_other(_detail_url(character))


@login_required
@require_GET
def reference_photo(request: HtmxHttpRequest, pk: int) -> FileResponse:
    reference = get_reference_for_user(request, pk)
    return stored_file_response(
        reference.file.name,
        reference.mime,
        filename=reference.original_name,
        as_attachment=False,
    )


@login_required
@require_GET
def reference_crop(request: HtmxHttpRequest, pk: int) -> FileResponse:
    """The aligned face crop (224 px) the registration made; 404 until then."""
    reference = get_reference_for_user(request, pk)
    return stored_file_response(
        reference.crop,
        "image/jpeg",
        filename=f"face-{reference.pk}.jpg",
        as_attachment=False,
    )


@login_required
@require_http_methods(["GET", "POST"])
def character_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    character = get_character_for_user(request, pk)
    if request.method != "POST":
        return render(
            request,
            "characters/character_confirm_delete.html",
            {
                "character": character,
                "reference_total": character.references.count(),
                "projects": list(character.projects.order_by("title", "id")),
            },
        )
    name = character.name
    delete_character(character)
    messages.success(request, f"Deleted {name}, its photos and its face data.")
    url = reverse("characters:list")
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return see_other(url)
