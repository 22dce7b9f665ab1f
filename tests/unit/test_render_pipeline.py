"""The render pipeline run in-process, as `manage.py render` runs it: real
analysis, real clips, real ffmpeg assembly, on the sample material."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from media_jobs.models import Job
from projects.models import Project, Render, Scene
from projects.pipeline import RenderNotReady, render_now
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
    assert job.error and "Traceback" not in job.error
    project.refresh_from_db()
    assert project.status == Project.Status.FAILED
    assert not Render.objects.exists()
    assert not list(Path(settings.STUDIO_WORK_DIR).glob("*"))
    assert not (Path(settings.MEDIA_ROOT) / "renders").exists()
