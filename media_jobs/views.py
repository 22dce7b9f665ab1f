"""Job pages: the job's progress, its scenes and its result.

The progress block is one partial, ``media_jobs/_job_progress.html``, rendered
from a ``ProgressPayload``-shaped dict, so the page, the polling endpoint and
the websocket consumer all produce exactly the same markup.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET
from django_htmx.middleware import HtmxDetails

from .access import get_job_for_user
from .models import Job
from .progress import ProgressPayload, payload_for

PROGRESS_TEMPLATE = "media_jobs/_job_progress.html"


class HtmxHttpRequest(HttpRequest):
    """A request that went through ``django_htmx``'s middleware."""

    htmx: HtmxDetails


def progress_context(
    payload: ProgressPayload, *, oob: bool = False, live: bool = False
) -> dict[str, Any]:
    """Template context of the progress partial, from the payload alone.

    ``oob`` marks the block for htmx's out-of-band swap (websocket messages);
    ``live`` says the block replaces one already on the page, so it may offer
    a reload link once the job has finished.
    """
    status = payload["status"]
    try:
        status_label = Job.Status(status).label
    except ValueError:
        status_label = status
    progress = float(payload["progress"])
    return {
        "p": {
            "job": payload["job"],
            "status": status,
            "status_label": status_label,
            "stage": payload["stage"],
            "progress": progress,
            "percent": round(progress * 100),
            "message": payload["message"],
            "error": payload["error"],
            "is_active": status in Job.ACTIVE_STATUSES,
        },
        "poll_url": reverse("jobs:progress", args=[payload["job"]]),
        "detail_url": reverse("jobs:detail", args=[payload["job"]]),
        "oob": oob,
        "live": live,
    }


def render_progress_html(payload: ProgressPayload, *, oob: bool = False) -> str:
    """The progress partial as HTML; used by the websocket consumer (no DB query)."""
    return render_to_string(
        PROGRESS_TEMPLATE, progress_context(payload, oob=oob, live=True)
    )


def _job_page(request: HtmxHttpRequest, job: Job, *, status: int = 200) -> HttpResponse:
    try:
        result = job.render
    except ObjectDoesNotExist:
        result = None
    scenes = job.scenes.select_related("image").order_by("index")
    context = {
        "job": job,
        "project": job.project,
        "scenes": scenes,
        "result": result,
        **progress_context(payload_for(job)),
    }
    return render(request, "media_jobs/job_detail.html", context, status=status)


@login_required
@require_GET
def job_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    job = get_job_for_user(request, pk)
    return _job_page(request, job)


@login_required
@require_GET
def job_progress(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The polling fallback: the progress partial for htmx, the whole page otherwise."""
    job = get_job_for_user(request, pk)
    if request.htmx:
        return render(
            request, PROGRESS_TEMPLATE, progress_context(payload_for(job), live=True)
        )
    return _job_page(request, job)
