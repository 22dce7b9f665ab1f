"""Without a broker (the embedded default), a render started from a page runs
in a thread of the web process: the request returns at once and the job
still finishes, reporting progress as it goes."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from media_jobs.models import Job
from projects.uploads import add_asset_from_path
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_page_render_runs_in_a_thread_when_there_is_no_broker(
    settings, alice, alice_client, sample_files
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.STUDIO_RUN_TASKS_IN_THREAD = True
    project = ProjectFactory(owner=alice, target_duration=4.0, preset="preview")
    for name in ("astronaut", "song"):
        add_asset_from_path(project, sample_files[name])

    started = time.monotonic()
    response = alice_client.post(reverse("projects:render", args=[project.pk]))
    answered_in = time.monotonic() - started

    job = Job.objects.get(project=project)
    assert response.status_code == 302
    assert response["Location"] == reverse("jobs:detail", args=[job.pk])
    deadline = time.monotonic() + 120
    while not job.is_finished and time.monotonic() < deadline:
        time.sleep(0.2)
        job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    # The request came back well before the render was done.
    assert answered_in < (job.finished_at - job.created_at).total_seconds()
