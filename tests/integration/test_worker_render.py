"""A render sent through Redis to a real worker process, and its progress
arriving over the job's websocket."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.files.storage import default_storage

from media_jobs.models import Job
from projects.models import Render, Scene
from projects.pipeline import create_render_job, render_canvas, start_render
from projects.uploads import add_asset_from_path
from tests.factories import ProjectFactory
from tests.media_checks import nearest_distance
from tests.unit.conftest import changes, joins_match, planned_windows
from workers.probe import probe_media

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _project(owner, sample_files, duration=6.0):
    project = ProjectFactory(owner=owner, target_duration=duration, preset="preview")
    for name in ("astronaut", "hopper", "song"):
        add_asset_from_path(project, sample_files[name])
    return project


def _wait_finished(job_id: int, timeout: float = 180.0) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.is_finished:
            return job
        time.sleep(0.2)
    raise AssertionError(
        f"job {job_id} still {job.status} at {job.percent}% after {timeout} s"
    )


def test_a_worker_process_renders_the_video(alice, sample_files, worker_media):
    project = _project(alice, sample_files)

    job = start_render(project)
    job = _wait_finished(job.pk)

    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.task_id
    render = Render.objects.get(job=job)
    path = Path(default_storage.path(render.file))
    info = probe_media(path)
    fps = info.of_kind("video")[0].fps
    assert [s.codec for s in info.of_kind("video")] == ["h264"]
    assert [s.codec for s in info.of_kind("audio")] == ["aac"]
    scenes = list(Scene.objects.filter(job=job).order_by("index"))
    assert scenes[-1].end_frame == 180
    assert info.duration == pytest.approx(180 / fps, abs=1e-3)
    # The worker stored the planner's joins and rendered them where planned.
    assert any(s.transition != "cut" for s in scenes[:-1])
    assert joins_match(changes(path), planned_windows(scenes))
    for scene in scenes[1:]:
        assert (
            nearest_distance(scene.start_frame / fps, sample_files["song_truth"].beats)
            <= 1 / fps
        )
    assert [s["transition"]["type"] for s in render.manifest["scenes"]] == [
        s.transition for s in scenes
    ]


def test_a_failure_in_the_worker_fails_the_job_with_its_reason(
    alice, sample_files, worker_media
):
    project = _project(alice, sample_files)
    song = project.music()
    Path(default_storage.path(song.file.name)).write_bytes(b"\x00" * 4096)

    job = _wait_finished(start_render(project).pk)

    assert job.status == Job.Status.FAILED
    assert job.error and "Traceback" not in job.error
    assert not Render.objects.filter(job=job).exists()


async def test_live_progress_reaches_100_percent_over_the_websocket(
    alice, client, sample_files, worker_media
):
    from studio_site.asgi import application

    project = await sync_to_async(_project)(alice, sample_files)
    job = await sync_to_async(create_render_job)(project)
    await sync_to_async(client.force_login)(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    communicator = WebsocketCommunicator(
        application,
        f"/ws/jobs/{job.pk}/?format=json",
        headers=[(b"cookie", cookie), (b"origin", b"http://localhost")],
    )
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_json_from(timeout=5)
    assert first["status"] == "queued"

    await sync_to_async(lambda: render_canvas(job).apply_async())()
    seen, scenes = [], []
    while True:
        message = await communicator.receive_json_from(timeout=120)
        if message["type"] == "job.scene":
            scenes.append(message)
            continue
        seen.append(message)
        if message["status"] in ("succeeded", "failed"):
            break
    await communicator.disconnect()

    # Each scene announced itself as it finished, with its preview and worker.
    planned = await sync_to_async(Scene.objects.filter(job=job).count)()
    finished = {m["index"]: m for m in scenes if m["status"] == "done"}
    assert sorted(finished) == list(range(planned))
    assert all(m["has_thumbnail"] and m["worker"] for m in finished.values())

    assert seen[-1]["status"] == "succeeded", seen[-1]
    assert seen[-1]["progress"] == 1.0
    progress = [m["progress"] for m in seen]
    assert progress == sorted(progress), seen
    assert {"analyze", "plan", "scenes", "assemble"} <= {m["stage"] for m in seen}
