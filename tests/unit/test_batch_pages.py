"""The batch pages: a CSV of renders uploaded from a form, its bad rows shown,
and the batch's jobs followed and cancelled together, with and without htmx."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from media_jobs.models import Batch, Job
from projects.batches import parse_batch_csv, submit_batch

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def csv_file(text: str, name: str = "renders.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


@pytest.fixture
def batch(alice, small_project, farm_full) -> Batch:
    text = (
        f"project,preset,format\n{small_project.pk},shorts,mp4\n"
        f"{small_project.pk},preview,webm\n"
    )
    return submit_batch(alice, "Two cuts", parse_batch_csv(text, alice))


def test_the_form_page_explains_the_csv_columns(alice_client):
    response = alice_client.get(reverse("projects:batch_new"))

    body = response.content.decode()
    assert response.status_code == 200
    assert "CSV columns" in body
    for column in ("project", "preset", "format", "duration", "style", "priority"):
        assert f"<code>{column}</code>" in body
    assert 'enctype="multipart/form-data"' in body
    assert "csrfmiddlewaretoken" in body


def test_uploading_a_good_csv_queues_the_batch_and_opens_its_page(
    alice_client, alice, small_project, farm_full
):
    text = f"project,preset,format,priority\n{small_project.pk},shorts,mp4,high\n"

    response = alice_client.post(
        reverse("projects:batch_new"), {"name": "Launch", "file": csv_file(text)}
    )

    batch = Batch.objects.get()
    assert response.status_code == 303
    assert response["Location"] == reverse("projects:batch_detail", args=[batch.pk])
    assert (batch.owner, batch.name) == (alice, "Launch")
    job = batch.jobs.get()
    assert (job.project, job.params["preset"], job.params["format"]) == (
        small_project,
        "shorts",
        "mp4",
    )
    assert job.priority == Job.Priority.HIGH
    assert job.status == Job.Status.QUEUED


def test_a_bad_row_is_shown_and_nothing_is_queued(
    alice_client, small_project, farm_full
):
    text = (
        f"project,preset,format\n{small_project.pk},shorts,mp4\n"
        f"{small_project.pk},shorts,avi\n"
    )

    response = alice_client.post(
        reverse("projects:batch_new"), {"name": "Launch", "file": csv_file(text)}
    )

    body = response.content.decode()
    assert response.status_code == 400
    assert 'id="batch-errors"' in body
    assert "<td>3</td>" in body  # the spreadsheet row of the bad line
    assert "&#x27;avi&#x27; is not a valid format" in body
    assert not Batch.objects.exists()
    assert not Job.objects.exists()


def test_another_users_project_in_a_row_reads_as_missing(
    client, charlie, small_project, farm_full
):
    client.force_login(charlie)
    text = f"project\n{small_project.pk}\n"

    response = client.post(reverse("projects:batch_new"), {"file": csv_file(text)})

    assert response.status_code == 400
    assert f"no project {small_project.pk}" in response.content.decode()
    assert not Batch.objects.exists()


def test_the_batch_page_lists_its_jobs_and_polls_while_they_are_active(
    alice_client, batch
):
    response = alice_client.get(reverse("projects:batch_detail", args=[batch.pk]))

    body = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Two cuts</h1>" in body
    for job in batch.jobs.all():
        assert reverse("jobs:detail", args=[job.pk]) in body
    assert "Night drive" in body
    assert "<td>shorts</td>" in body and "<td>webm</td>" in body
    assert 'hx-trigger="every 2s"' in body
    assert reverse("projects:batch_cancel", args=[batch.pk]) in body


def test_an_htmx_request_gets_only_the_jobs_partial(alice_client, batch):
    response = alice_client.get(
        reverse("projects:batch_detail", args=[batch.pk]), headers=HTMX
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section class="card" id="batch-jobs"')
    assert "<html" not in body
    assert 'hx-trigger="every 2s"' in body


def test_cancel_all_cancels_the_active_jobs_and_stops_the_polling(alice_client, batch):
    response = alice_client.post(reverse("projects:batch_cancel", args=[batch.pk]))

    assert response.status_code == 303
    assert response["Location"] == reverse("projects:batch_detail", args=[batch.pk])
    assert set(batch.jobs.values_list("status", flat=True)) == {Job.Status.CANCELLED}
    page = alice_client.get(response["Location"]).content.decode()
    assert 'hx-trigger="every 2s"' not in page
    assert 'id="batch-cancel"' not in page


def test_cancel_all_over_htmx_returns_the_partial(alice_client, batch):
    response = alice_client.post(
        reverse("projects:batch_cancel", args=[batch.pk]), headers=HTMX
    )

    assert response.status_code == 200
    assert 'id="batch-jobs"' in response.content.decode()
    assert not batch.jobs.filter(status__in=Job.ACTIVE_STATUSES).exists()


def test_cancel_all_is_post_only_and_needs_the_csrf_token(alice, batch):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    url = reverse("projects:batch_cancel", args=[batch.pk])

    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 403
    assert batch.jobs.filter(status=Job.Status.QUEUED).count() == 2


def test_charlie_cannot_see_or_cancel_alices_batch(client, charlie, batch):
    client.force_login(charlie)

    page = client.get(reverse("projects:batch_detail", args=[batch.pk]))
    cancel = client.post(reverse("projects:batch_cancel", args=[batch.pk]))

    assert (page.status_code, cancel.status_code) == (404, 404)
    assert batch.jobs.filter(status=Job.Status.QUEUED).count() == 2
    listing = client.get(reverse("projects:batch_list")).content.decode()
    assert "Two cuts" not in listing


def test_the_batch_list_shows_your_batches_newest_first(alice_client, alice, batch):
    newer = Batch.objects.create(owner=alice, name="Second round")

    body = alice_client.get(reverse("projects:batch_list")).content.decode()

    assert body.index("Second round") < body.index("Two cuts")
    assert reverse("projects:batch_detail", args=[newer.pk]) in body


def test_the_project_list_links_to_the_batch_form(alice_client):
    body = alice_client.get(reverse("projects:list")).content.decode()

    assert reverse("projects:batch_new") in body
    assert "Batch render (CSV)" in body


@pytest.mark.parametrize(
    "name", ["projects:batch_list", "projects:batch_new", "projects:batch_detail"]
)
def test_anonymous_visitors_are_sent_to_log_in(client, name):
    args = [1] if name == "projects:batch_detail" else []
    response = client.get(reverse(name, args=args))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
