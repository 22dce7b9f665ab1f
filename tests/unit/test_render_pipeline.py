"""The render pipeline run in-process, as `manage.py render` runs it: real
analysis, real clips, real ffmpeg assembly, on the sample material."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from media_jobs.models import Job
from media_jobs.orchestration import run_inline
from media_jobs.progress import add_listener, remove_listener
from projects.models import Project, Render, Scene
from projects.pipeline import (
    RENDER_ERROR_CALLBACK,
    RenderNotReady,
    create_render_job,
    render_canvas,
    render_now,
)
from projects.tasks import analyze_music, plan_scenes, render_scene
from projects.uploads import add_asset_from_path
from tests.factories import ProjectFactory
from tests.media_checks import detect_cuts, nearest_distance
from workers.probe import probe_media

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(alice, sample_files) -> Project:
    project = ProjectFactory(owner=alice, target_duration=6.0, preset="preview")
    add_asset_from_path(project, sample_files["astronaut"])
    add_asset_from_path(project, sample_files["hopper"])
    add_asset_from_path(project, sample_files["song"])
    return project


def test_it_renders_a_video_with_cuts_on_the_beats(project, sample_files):
    job = render_now(project)

    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.progress == 1.0
    render = Render.objects.get(job=job)
    with default_storage.open(render.file) as handle:
        path = Path(handle.name)
    info = probe_media(path)
    video, audio = info.of_kind("video"), info.of_kind("audio")
    assert [s.codec for s in video] == ["h264"]
    assert [s.codec for s in audio] == ["aac"]
    assert (video[0].width, video[0].height) == (640, 360)
    fps = video[0].fps
    assert abs(info.duration - 6.0) <= 1 / fps

    truth_beats = sample_files["song_truth"].beats
    cuts = detect_cuts(path)
    scenes = list(Scene.objects.filter(job=job).order_by("index"))
    assert len(cuts) == len(scenes) - 1 >= 1
    assert cuts == [s.start_frame for s in scenes[1:]]
    for frame in cuts:
        assert nearest_distance(frame / fps, truth_beats) <= 1 / fps


def test_the_manifest_lists_every_scene_and_its_cut(project):
    job = render_now(project)
    manifest = Render.objects.get(job=job).manifest

    assert [s["index"] for s in manifest["scenes"]] == list(
        range(len(manifest["scenes"]))
    )
    assert manifest["cuts"] == [s["start"] for s in manifest["scenes"][1:]]
    assert manifest["output"]["frames"] == 180
    assert set(manifest["timings"]) == {"analyze", "plan", "assemble"}


def test_a_second_render_reuses_the_clips_and_the_analysis(project):
    first = render_now(project)
    second = render_now(project)

    assert second.status == Job.Status.SUCCEEDED
    assert not Scene.objects.filter(job=first, cached=True).exists()
    assert set(Scene.objects.filter(job=second).values_list("cached", flat=True)) == {
        True
    }


def test_a_project_without_music_is_not_ready(alice, sample_files):
    project = ProjectFactory(owner=alice)
    add_asset_from_path(project, sample_files["astronaut"])

    with pytest.raises(RenderNotReady, match="a song"):
        render_now(project)
    assert not Job.objects.exists()


def test_a_failing_stage_fails_the_job_once_and_leaves_no_files(
    alice, sample_files, tmp_path, settings
):
    project = ProjectFactory(owner=alice)
    add_asset_from_path(project, sample_files["astronaut"])
    song = add_asset_from_path(project, sample_files["song"])
    # The stored song is damaged after upload: analysis must fail cleanly.
    Path(default_storage.path(song.file.name)).write_bytes(b"\x00" * 4096)

    job = render_now(project)

    assert job.status == Job.Status.FAILED
    assert job.error.startswith("song.wav: ")
    assert "Traceback" not in job.error
    project.refresh_from_db()
    assert project.status == Project.Status.FAILED
    assert not Render.objects.exists()
    assert not list(Path(settings.STUDIO_WORK_DIR).glob("*"))
    assert not (Path(settings.MEDIA_ROOT) / "renders").exists()


def _failed_payloads(job_id: int):
    sent: list[dict] = []

    def listen(payload):
        if payload["job"] == job_id and payload["status"] == "failed":
            sent.append(dict(payload))

    return sent, listen


def test_a_failing_scene_fails_the_job_once_and_leaves_no_partial_files(
    alice, sample_files, settings
):
    project = ProjectFactory(owner=alice, target_duration=6.0, preset="preview")
    photo = add_asset_from_path(project, sample_files["astronaut"])
    add_asset_from_path(project, sample_files["song"])
    # The stored photo is damaged after upload: its scenes cannot be rendered.
    Path(default_storage.path(photo.file.name)).write_bytes(
        b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    )
    job = create_render_job(project)
    sent, listen = _failed_payloads(job.pk)

    add_listener(listen)
    try:
        run_inline(job.pk, render_canvas(job.pk), RENDER_ERROR_CALLBACK)
    finally:
        remove_listener(listen)

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "scene 0: astronaut.png: not an image that can be read"
    assert len(sent) == 1
    assert Scene.objects.filter(job=job, status=Scene.Status.FAILED).exists()
    media = Path(settings.MEDIA_ROOT)
    assert not list(media.glob("cache/clips/*"))
    assert not (media / "renders").exists()
    assert not list(Path(settings.STUDIO_WORK_DIR).glob("*"))


def test_a_second_delivery_of_the_analysis_is_ignored(project):
    job = create_render_job(project)
    analyze_music.apply(args=(job.pk,))
    job.refresh_from_db()
    first = dict(job.params)

    again = analyze_music.apply(args=(job.pk,))

    job.refresh_from_db()
    assert again.state == "IGNORED"
    assert job.status == Job.Status.RUNNING
    assert job.params == first
    assert job.params["stages_finished"] == ["analyze"]


def test_a_second_delivery_of_the_plan_keeps_the_scenes_and_fans_out_once(
    project, monkeypatch
):
    fanned_out: list[list[int]] = []
    monkeypatch.setattr(
        "projects.tasks.fan_out",
        lambda task, item, ids, callback, job_id: fanned_out.append(list(ids)),
    )
    job = create_render_job(project)
    analyze_music.apply(args=(job.pk,))
    plan_scenes.apply(args=(job.pk,))
    scenes = list(Scene.objects.filter(job=job).values_list("pk", flat=True))

    again = plan_scenes.apply(args=(job.pk,))

    assert again.state == "IGNORED"
    assert list(Scene.objects.filter(job=job).values_list("pk", flat=True)) == scenes
    assert fanned_out == [sorted(scenes)]


def test_a_second_delivery_of_a_finished_scene_does_not_render_it_again(
    project, monkeypatch
):
    monkeypatch.setattr("projects.tasks.fan_out", lambda *args: None)
    job = create_render_job(project)
    analyze_music.apply(args=(job.pk,))
    plan_scenes.apply(args=(job.pk,))
    scene = Scene.objects.filter(job=job).first()
    render_scene.apply(args=(scene.pk,))
    scene.refresh_from_db()
    clip = Path(default_storage.path(scene.clip))
    written = clip.stat().st_mtime_ns

    render_scene.apply(args=(scene.pk,))

    again = Scene.objects.get(pk=scene.pk)
    assert (again.status, again.seconds) == (Scene.Status.DONE, scene.seconds)
    assert clip.stat().st_mtime_ns == written


def test_a_render_uses_the_song_it_was_started_with(project, sample_files, tmp_path):
    job = create_render_job(project)
    from workers.audio.synth import SongSpec, synthesize_song, write_wav

    other = write_wav(
        tmp_path / "other.wav",
        synthesize_song(SongSpec(bpm=90.0, seed=3, sections=(("verse", 4),))),
    )
    add_asset_from_path(project, other)  # uploaded while the job waits

    run_inline(job.pk, render_canvas(job.pk), RENDER_ERROR_CALLBACK)

    job.refresh_from_db()
    render = Render.objects.get(job=job)
    assert job.status == Job.Status.SUCCEEDED
    song = project.assets.get(pk=job.params["music"])
    assert render.manifest["music"]["sha256"] == song.sha256
    assert song.original_name == "song.wav"


def test_a_render_that_stopped_reporting_does_not_block_the_project(project, settings):
    from datetime import timedelta

    from django.utils import timezone

    from projects.pipeline import RenderInProgress, start_render

    stuck = create_render_job(project)
    Job.objects.filter(pk=stuck.pk).update(status=Job.Status.RUNNING)
    with pytest.raises(RenderInProgress):
        start_render(project)  # a live render does block a second one

    long_ago = timezone.now() - timedelta(seconds=settings.TASK_TIME_LIMIT + 120)
    Job.objects.filter(pk=stuck.pk).update(updated_at=long_ago)
    fresh = start_render(project)

    stuck.refresh_from_db()
    assert stuck.status == Job.Status.FAILED
    assert "stopped reporting" in stuck.error
    assert fresh.pk != stuck.pk and fresh.status == Job.Status.QUEUED
