"""Batch pages: upload a CSV of renders, see every bad row at once, then
follow (and cancel) the batch's jobs together.

Parsing, checking and submitting are ``batches``'s, shared with the batch
API; these views only read the upload and show the outcome. An htmx request
for the batch page gets its jobs partial (polled while any job is active),
any other request the whole page.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from media_jobs import control
from media_jobs.models import Batch, Job
from media_jobs.views import HtmxHttpRequest, see_other

from .batches import (
    COLUMNS,
    MAX_CSV_BYTES,
    OPTION_CHOICES,
    PRIORITY_NAMES,
    BatchError,
    decode_batch_csv,
    parse_batch_csv,
    submit_batch,
)


class BatchUploadForm(forms.Form):
    name = forms.CharField(
        max_length=200, required=False, help_text="Optional; the file name if empty."
    )
    file = forms.FileField(
        label="CSV file",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )


def _batches_for_user(request: HtmxHttpRequest) -> Any:
    return Batch.objects.filter(owner=request.user)


def _get_batch_for_user(request: HtmxHttpRequest, pk: int) -> Batch:
    """The user's batch; another user's reads as missing (404)."""
    return get_object_or_404(_batches_for_user(request), pk=pk)


def _column_help() -> list[dict[str, str]]:
    allowed = {
        "project": "required: the id of one of your projects",
        "duration": "seconds, 2 to 3600",
        "model": "a scene model key",
        "priority": ", ".join(PRIORITY_NAMES) + " (or 0 to 3)",
    }
    for name, choices in OPTION_CHOICES.items():
        if choices:
            allowed[name] = ", ".join(choices)
    return [{"name": name, "allowed": allowed.get(name, "")} for name in COLUMNS]


def _new_page(
    request: HtmxHttpRequest,
    form: BatchUploadForm,
    errors: list[dict[str, Any]] | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "form": form,
        "row_errors": errors or [],
        "columns": _column_help(),
        "max_mb": MAX_CSV_BYTES // (1024 * 1024),
    }
    return render(request, "projects/batch_new.html", context, status=status)


def _see_batch(batch: Batch) -> HttpResponseRedirect:
    """A 303 to the batch page: the browser follows it with a GET."""
    return see_other(reverse("projects:batch_detail", args=[batch.pk]))


@login_required
@require_GET
def batch_list(request: HtmxHttpRequest) -> HttpResponse:
    batches = _batches_for_user(request).order_by("-created_at", "-id")
    rows = []
    for batch in batches.prefetch_related("jobs"):
        jobs = list(batch.jobs.all())
        rows.append(
            {
                "batch": batch,
                "total": len(jobs),
                "active": sum(j.status in Job.ACTIVE_STATUSES for j in jobs),
                "succeeded": sum(j.status == Job.Status.SUCCEEDED for j in jobs),
            }
        )
    return render(request, "projects/batch_list.html", {"rows": rows})


@login_required
@require_http_methods(["GET", "POST"])
def batch_new(request: HtmxHttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _new_page(request, BatchUploadForm())
    form = BatchUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _new_page(request, form, status=400)
    upload = form.cleaned_data["file"]
    try:
        # One byte past the limit is enough for decode_batch_csv to refuse it.
        text = decode_batch_csv(upload.read(MAX_CSV_BYTES + 1))
        requests = parse_batch_csv(text, request.user)
        name = form.cleaned_data["name"] or upload.name or ""
        batch = submit_batch(request.user, name, requests)
    except BatchError as exc:
        return _new_page(request, form, exc.errors, status=400)
    messages.success(request, f"Queued {batch.jobs.count()} renders.")
    return _see_batch(batch)


def _jobs_context(batch: Batch) -> dict[str, Any]:
    jobs = list(batch.jobs.select_related("project").order_by("created_at", "id"))
    active = any(job.status in Job.ACTIVE_STATUSES for job in jobs)
    percent = round(sum(job.percent for job in jobs) / len(jobs)) if jobs else 0
    return {
        "batch": batch,
        "jobs": jobs,
        "active": active,
        "percent": percent,
        "finished": sum(job.status not in Job.ACTIVE_STATUSES for job in jobs),
    }


@login_required
@require_GET
def batch_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    batch = _get_batch_for_user(request, pk)
    context = _jobs_context(batch)
    if request.htmx:
        return render(request, "projects/_batch_jobs.html", context)
    return render(request, "projects/batch_detail.html", context)


@login_required
@require_POST
def batch_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Cancel every queued, running or held job of the batch (``control.cancel``)."""
    batch = _get_batch_for_user(request, pk)
    cancelled = 0
    for job in batch.jobs.filter(status__in=Job.CANCELLABLE_STATUSES):
        try:
            control.cancel(job)
        except control.JobActionRefused:
            continue  # it finished meanwhile
        cancelled += 1
    if request.htmx:
        return render(request, "projects/_batch_jobs.html", _jobs_context(batch))
    messages.success(request, f"Cancelled {cancelled} jobs.")
    return _see_batch(batch)
