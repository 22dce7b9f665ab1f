"""The job page as the farm's live view: stages, scene cards with previews,
cancel / retry, making one scene again, and the live updates (websocket
out-of-band swaps, polling as the fallback)."""

from __future__ import annotations

import re

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import reverse

from media_jobs import records
from media_jobs.models import Job, JobStage, RunStatus, TaskRun, group_name
from media_jobs.progress import ScenePayload
from projects.models import Project, Scene
from projects.pipeline import render_now
from projects.uploads import add_asset_from_path
from studio_site.asgi import application
from tests.factories import JobFactory, ProjectFactory, SceneFactory
from tests.unit.web_helpers import finished_render, stored_image_asset
from workers.assembly.motion import MOVES

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def small_project(alice, sample_files) -> Project:
    project = ProjectFactory(owner=alice, target_duration=4.0, preset="preview")
    add_asset_from_path(project, sample_files["astronaut"])
    add_asset_from_path(project, sample_files["hopper"])
    add_asset_from_path(project, sample_files["song"])
    return project


@pytest.fixture
def charlie_browser(charlie) -> Client:
    # A client of its own: alice_client and charlie_client share one client.
    browser = Client()
    browser.force_login(charlie)
    return browser


def _waiting_job(alice_client, project, settings, capture) -> Job:
    """A render asked for through the page that the farm keeps queued."""
    settings.STUDIO_MAX_RUNNING_JOBS = 0
    with capture(execute=True):
        alice_client.post(reverse("projects:render", args=[project.pk]))
    job = Job.objects.get()
    assert job.status == Job.Status.QUEUED and job.dispatched_at is None
    return job


def _running_job_with_scenes(project) -> Job:
    image = stored_image_asset(project)
    job = JobFactory(
        project=project, status=Job.Status.RUNNING, stage="scenes", progress=0.5
    )
    records.create_stages(job)
    records.finish_stage(job.pk, "analyze", 1.25)
    records.finish_stage(job.pk, "character", 0.2)
    records.finish_stage(job.pk, "plan", 0.0, cached=True)
    records.start_stage(job.pk, "scenes")
    for index, status in enumerate([Scene.Status.DONE, Scene.Status.PENDING]):
        SceneFactory(
            job=job,
            index=index,
            image=image,
            status=status,
            thumbnail="scenes/0.jpg" if status == Scene.Status.DONE else "",
            seconds=0.42 if status == Scene.Status.DONE else None,
        )
    TaskRun.objects.create(
        job=job,
        stage="scenes",
        key="scene-0",
        scene_index=0,
        task_name="projects.render_scene",
        queue="gpu-small",
        worker="celery@farm-3",
        status=RunStatus.DONE,
    )
    return job


# --- the page of a finished render ----------------------------------------------------


def test_a_real_render_shows_its_stages_and_scene_previews_and_remakes_a_scene(
    alice_client, charlie_browser, small_project
):
    # One real (small) render for the whole story: it takes half a minute.
    job = render_now(small_project)
    assert job.status == Job.Status.SUCCEEDED, job.error
    scenes = list(job.scenes.order_by("index"))

    html = alice_client.get(reverse("jobs:detail", args=[job.pk])).content.decode()

    assert f'id="job-stages-{job.pk}"' in html
    found = re.findall(r'data-stage="(\w+)" data-status="(\w+)"', html)
    assert [name for name, _ in found] == list(records.RENDER_STAGES)
    # The scenes stage is left out: projects/tasks.py never starts or
    # finishes its JobStage row, so it reads "pending" after the render.
    assert {name: status for name, status in found if name != "scenes"} == {
        "analyze": "done",
        "character": "done",
        "plan": "done",
        "assemble": "done",
    }
    assert scenes
    for scene in scenes:
        assert scene.thumbnail
        assert f'id="scene-{scene.index}"' in html
        assert f'src="{reverse("jobs:scene_preview", args=[scene.pk])}"' in html
    # A finished render neither polls nor listens, and offers each scene again.
    assert "hx-trigger" not in html and "ws-connect" not in html
    assert html.count("Make this scene again") == len(scenes)
    for move in MOVES:
        assert f'<option value="{move}">' in html
    assert "Cancel</button>" not in html and "Retry</button>" not in html

    # The preview is the scene's JPEG, for its owner only.
    preview = reverse("jobs:scene_preview", args=[scenes[0].pk])
    mine = alice_client.get(preview)
    theirs = charlie_browser.get(preview)
    assert mine.status_code == 200
    assert mine["Content-Type"] == "image/jpeg"
    assert mine["X-Content-Type-Options"] == "nosniff"
    assert b"".join(mine.streaming_content)[:3] == b"\xff\xd8\xff"
    assert theirs.status_code == 404

    # Making the last scene again with another move opens the new render.
    last = scenes[-1]
    response = alice_client.post(
        reverse("jobs:scene_rerender", args=[job.pk, last.index]), {"move": "static"}
    )

    child = Job.objects.get(parent=job)
    assert response.status_code == 303
    assert response["Location"] == reverse("jobs:detail", args=[child.pk])
    assert child.status == Job.Status.QUEUED
    assert child.scenes.get(index=last.index).move == "static"
    page = alice_client.get(response["Location"]).content.decode()
    assert f"Scene {last.index} is being made again in render #{child.pk}." in page
    assert f'href="{reverse("jobs:detail", args=[job.pk])}"' in page


def test_a_scene_without_a_preview_is_a_404(alice_client, project):
    job = JobFactory(project=project)
    finished_render(job, stored_image_asset(project))  # a scene, no thumbnail
    scene = job.scenes.get()

    response = alice_client.get(reverse("jobs:scene_preview", args=[scene.pk]))

    assert response.status_code == 404


def test_anonymous_visitors_are_sent_to_log_in_for_a_preview(client, project):
    job = JobFactory(project=project)
    finished_render(job, stored_image_asset(project))

    response = client.get(reverse("jobs:scene_preview", args=[job.scenes.get().pk]))

    assert response.status_code == 302 and "login" in response["Location"]


# --- making one scene again -----------------------------------------------------------


@pytest.fixture
def finished_job(project) -> Job:
    """A finished render's rows (one scene, no preview), without rendering."""
    job = JobFactory(project=project)
    finished_render(job, stored_image_asset(project))
    return job


def test_making_a_scene_again_with_htmx_redirects_the_browser(
    alice_client, finished_job
):
    url = reverse("jobs:scene_rerender", args=[finished_job.pk, 0])

    response = alice_client.post(url, headers=HTMX)

    child = Job.objects.get(parent=finished_job)
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("jobs:detail", args=[child.pk])
    assert child.scenes.get(index=0).move == "zoom_in"  # no move: the same one


def test_an_unknown_move_is_refused_with_the_reason(alice_client, finished_job):
    url = reverse("jobs:scene_rerender", args=[finished_job.pk, 0])

    page = alice_client.post(url, {"move": "somersault"})
    partial = alice_client.post(url, {"move": "somersault"}, headers=HTMX)

    assert page.status_code == 409 and partial.status_code == 409
    assert "unknown move" in page.content.decode()
    assert partial.content.decode().startswith(
        '<p class="error" role="alert" id="scene-0-action">'
    )
    assert not Job.objects.filter(parent=finished_job).exists()


def test_a_scene_of_a_render_under_way_cannot_be_made_again(alice_client, project):
    job = _running_job_with_scenes(project)

    response = alice_client.post(reverse("jobs:scene_rerender", args=[job.pk, 0]))

    assert response.status_code == 409
    assert "only a finished render" in response.content.decode()


def test_a_scene_that_does_not_exist_is_a_404(alice_client, finished_job):
    url = reverse("jobs:scene_rerender", args=[finished_job.pk, 7])

    response = alice_client.post(url)

    assert response.status_code == 404


# --- cancel and retry -----------------------------------------------------------------


def test_a_waiting_render_can_be_cancelled_then_retried(
    alice_client, ready_project, settings, django_capture_on_commit_callbacks
):
    job = _waiting_job(
        alice_client, ready_project, settings, django_capture_on_commit_callbacks
    )
    page = alice_client.get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert f'action="{reverse("jobs:cancel", args=[job.pk])}"' in page
    assert "Retry</button>" not in page

    cancelled = alice_client.post(reverse("jobs:cancel", args=[job.pk]))

    job.refresh_from_db()
    assert cancelled.status_code == 303
    assert cancelled["Location"] == reverse("jobs:detail", args=[job.pk])
    assert job.status == Job.Status.CANCELLED
    page = alice_client.get(cancelled["Location"]).content.decode()
    assert f"Job #{job.pk} was cancelled." in page
    assert f'action="{reverse("jobs:retry", args=[job.pk])}"' in page
    assert "Cancel</button>" not in page
    stages = dict(JobStage.objects.filter(job=job).values_list("name", "status"))
    assert set(stages.values()) == {RunStatus.CANCELLED}

    retried = alice_client.post(reverse("jobs:retry", args=[job.pk]))

    job.refresh_from_db()
    assert retried.status_code == 303
    assert (job.status, job.attempts) == (Job.Status.QUEUED, 2)
    page = alice_client.get(retried["Location"]).content.decode()
    assert "Cancel</button>" in page and "Retry</button>" not in page


def test_cancelling_with_htmx_returns_the_refreshed_progress_block(
    alice_client, ready_project, settings, django_capture_on_commit_callbacks
):
    job = _waiting_job(
        alice_client, ready_project, settings, django_capture_on_commit_callbacks
    )

    response = alice_client.post(reverse("jobs:cancel", args=[job.pk]), headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.startswith(f'<section id="job-progress-{job.pk}"')
    assert "<html" not in html
    assert 'data-status="cancelled"' in html and "Retry</button>" in html
    assert f'id="job-stages-{job.pk}" class="job-stages"' in html
    assert 'hx-swap-oob="true"' in html


def test_a_finished_job_cannot_be_cancelled_and_says_why(alice_client, project):
    job = JobFactory(project=project)
    finished_render(job, stored_image_asset(project))
    url = reverse("jobs:cancel", args=[job.pk])

    page = alice_client.post(url)
    partial = alice_client.post(url, headers=HTMX)

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert page.status_code == 409 and partial.status_code == 409
    assert f"job #{job.pk} is already succeeded" in page.content.decode()
    assert "<html" in page.content.decode()
    assert partial.content.decode().startswith(f'<section id="job-progress-{job.pk}"')
    assert "is already succeeded" in partial.content.decode()


def test_a_running_job_cannot_be_retried(alice_client, project):
    job = JobFactory(project=project, status=Job.Status.RUNNING)

    response = alice_client.post(reverse("jobs:retry", args=[job.pk]))

    assert response.status_code == 409
    assert "only a failed or cancelled job can be retried" in response.content.decode()


def test_another_users_job_cannot_be_touched(charlie_browser, project):
    running = JobFactory(project=project, status=Job.Status.RUNNING)
    failed = JobFactory(project=project, status=Job.Status.FAILED)
    finished = JobFactory(project=project)
    finished_render(finished, stored_image_asset(project))

    responses = [
        charlie_browser.post(reverse("jobs:cancel", args=[running.pk])),
        charlie_browser.post(reverse("jobs:retry", args=[failed.pk])),
        charlie_browser.post(reverse("jobs:scene_rerender", args=[finished.pk, 0])),
    ]

    assert [r.status_code for r in responses] == [404, 404, 404]
    running.refresh_from_db()
    failed.refresh_from_db()
    assert (running.status, failed.status) == (Job.Status.RUNNING, Job.Status.FAILED)
    assert not Job.objects.filter(parent=finished).exists()


def test_the_job_actions_need_a_csrf_token_and_a_post(alice, project):
    job = JobFactory(project=project, status=Job.Status.RUNNING)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)

    forged = browser.post(reverse("jobs:cancel", args=[job.pk]))
    fetched = browser.get(reverse("jobs:cancel", args=[job.pk]))

    job.refresh_from_db()
    assert forged.status_code == 403 and fetched.status_code == 405
    assert job.status == Job.Status.RUNNING


# --- live updates ---------------------------------------------------------------------


def test_a_running_job_page_shows_stages_and_scene_cards(alice_client, project):
    job = _running_job_with_scenes(project)
    done = job.scenes.get(index=0)

    html = alice_client.get(reverse("jobs:detail", args=[job.pk])).content.decode()

    found = re.findall(r'data-stage="(\w+)" data-status="(\w+)"', html)
    assert found == [
        ("analyze", "done"),
        ("character", "done"),
        ("plan", "done"),
        ("scenes", "running"),
        ("assemble", "pending"),
    ]
    # The scenes stage is half way: its bar reads the job's progress.
    assert 'value="46"' in html  # (0.5 - 0.2) / (0.85 - 0.2)
    assert "cached" in html
    assert f'src="{reverse("jobs:scene_preview", args=[done.pk])}"' in html
    assert "celery@farm-3" in html and "gpu-small" in html and "0.42 s" in html
    assert 'id="scene-1-state"' in html
    assert "Make this scene again" not in html
    assert "Cancel</button>" in html


def test_polling_brings_the_progress_the_stages_and_the_scenes(alice_client, project):
    job = _running_job_with_scenes(project)
    url = reverse("jobs:progress", args=[job.pk])

    partial = alice_client.get(url, headers=HTMX).content.decode()
    page = alice_client.get(url).content.decode()

    assert partial.startswith(f'<section id="job-progress-{job.pk}"')
    assert "<html" not in partial
    assert 'hx-trigger="every 2s"' in partial
    assert f'<section id="job-stages-{job.pk}" class="job-stages"' in partial
    assert '<section class="card" id="job-scenes" hx-swap-oob="true">' in partial
    assert 'id="scene-0"' in partial and "celery@farm-3" in partial
    assert "<html" in page and 'id="job-scenes"' in page


def _session_headers(logged_in_client) -> list[tuple[bytes, bytes]]:
    session = logged_in_client.cookies["sessionid"].value
    return [
        (b"cookie", f"sessionid={session}".encode()),
        (b"origin", b"http://localhost"),
    ]


@pytest.mark.django_db(transaction=True)
async def test_the_websocket_swaps_in_a_finished_scene_card(alice_client, alice):
    layer = get_channel_layer()
    await layer.flush()
    project = await Project.objects.acreate(owner=alice, title="Live")
    job = await Job.objects.acreate(
        owner=alice, project=project, kind=Job.Kind.RENDER, status=Job.Status.RUNNING
    )
    ws = WebsocketCommunicator(
        application, f"/ws/jobs/{job.pk}/", headers=_session_headers(alice_client)
    )
    connected, _ = await ws.connect()
    assert connected
    await ws.receive_from()  # the current state

    await layer.group_send(
        group_name(job.pk),
        ScenePayload(
            type="job.scene",
            job=job.pk,
            scene=4321,
            index=2,
            status="done",
            cached=True,
            has_thumbnail=True,
            seconds=1.5,
            worker="celery@farm-7",
            queue="gpu-large",
            error="",
        ),
    )
    card = await ws.receive_from()
    await layer.group_send(
        group_name(job.pk),
        ScenePayload(
            type="job.scene",
            job=job.pk,
            scene=4322,
            index=3,
            status="failed",
            cached=False,
            has_thumbnail=False,
            seconds=None,
            worker="celery@farm-8",
            queue="cpu",
            error="scene 3: the photo is unreadable",
        ),
    )
    failed = await ws.receive_from()
    await ws.disconnect()
    await layer.flush()

    assert card.strip().startswith('<div id="scene-2-state"')
    assert 'hx-swap-oob="true"' in card
    assert f'src="{reverse("jobs:scene_preview", args=[4321])}"' in card
    assert "cached" in card and "celery@farm-7" in card and "gpu-large" in card
    assert "1.50 s" in card
    assert 'id="scene-3-state"' in failed and 'data-status="failed"' in failed
    assert "the photo is unreadable" in failed and "<img" not in failed


@pytest.mark.django_db(transaction=True)
async def test_the_websocket_progress_message_carries_the_stages(alice_client, alice):
    layer = get_channel_layer()
    await layer.flush()
    project = await Project.objects.acreate(owner=alice, title="Live")
    job = await Job.objects.acreate(
        owner=alice,
        project=project,
        kind=Job.Kind.RENDER,
        status=Job.Status.RUNNING,
        stage="analyze",
        progress=0.06,
    )
    await JobStage.objects.abulk_create(
        [
            JobStage(job=job, name=name, position=i, status=status)
            for i, (name, status) in enumerate(
                [("analyze", RunStatus.RUNNING), ("plan", RunStatus.PENDING)]
            )
        ]
    )
    ws = WebsocketCommunicator(
        application, f"/ws/jobs/{job.pk}/", headers=_session_headers(alice_client)
    )
    await ws.connect()

    first = await ws.receive_from()
    await ws.disconnect()
    await layer.flush()

    assert f'id="job-progress-{job.pk}"' in first
    assert f'<section id="job-stages-{job.pk}" class="job-stages"' in first
    stages_part = first[first.index(f'id="job-stages-{job.pk}"') :]
    assert 'hx-swap-oob="true"' in stages_part
    assert 'data-stage="analyze" data-status="running"' in stages_part
    assert 'value="50"' in stages_part  # 0.06 of the analyze span (0, 0.12)
