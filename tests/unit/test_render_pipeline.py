"""The render pipeline run in-process, as `manage.py render` runs it: real
analysis, the beat-sync plan, real ffmpeg rendering of the timeline, on the
sample material."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import av
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
from projects.styles import get_style
from projects.tasks import (
    ASSEMBLY_ENGINE_VERSION,
    analyze_music,
    build_timeline,
    ensure_analysis,
    plan_scenes,
    render_scene,
    scene_grade,
)
from projects.uploads import add_asset_from_path
from tests.factories import ProjectFactory
from tests.media_checks import nearest_distance
from tests.unit.conftest import changes, joins_match, planned_windows
from workers.assembly.beatsync import plan_beat_sync
from workers.assembly.grading import GRADES
from workers.assembly.presets import get_preset
from workers.assembly.timeline import load_timeline
from workers.probe import probe_media

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(alice, sample_files) -> Project:
    project = ProjectFactory(owner=alice, target_duration=6.0, preset="preview")
    add_asset_from_path(project, sample_files["astronaut"])
    add_asset_from_path(project, sample_files["hopper"])
    add_asset_from_path(project, sample_files["song"])
    return project


def test_it_renders_a_video_with_the_planned_transitions_on_the_beats(
    project, sample_files
):
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

    # The scenes carry the beat-sync plan's joins, each into the next scene.
    scenes = list(Scene.objects.filter(job=job).order_by("index"))
    analysis = ensure_analysis(project.music())
    plan = plan_beat_sync(analysis.to_contract(), duration=6.0, fps=30)
    assert len(plan) >= 1
    assert [
        (s.start_frame, a.transition, a.transition_frames)
        for a, s in zip(scenes, scenes[1:], strict=False)
    ] == [(c.frame, c.kind, round(c.duration * 30)) for c in plan]
    assert (scenes[-1].transition, scenes[-1].transition_frames) == ("cut", 0)
    assert any(s.transition_frames > 0 for s in scenes)

    # Exactly the planned frames, and the picture changes where the plan says.
    frames = scenes[-1].end_frame
    assert frames == 180
    with av.open(str(path)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == frames
    assert info.duration == pytest.approx(frames / fps, abs=1e-3)
    assert render.duration == frames / fps
    assert joins_match(changes(path), planned_windows(scenes))
    truth_beats = sample_files["song_truth"].beats
    for scene in scenes[1:]:
        assert nearest_distance(scene.start_frame / fps, truth_beats) <= 1 / fps
    assert default_storage.exists(render.thumbnail)


def test_the_manifest_lists_every_scene_its_cut_and_transition(project):
    job = render_now(project)
    render = Render.objects.get(job=job)
    manifest = render.manifest
    scenes = list(Scene.objects.filter(job=job).order_by("index"))

    assert [s["index"] for s in manifest["scenes"]] == list(
        range(len(manifest["scenes"]))
    )
    assert manifest["cuts"] == [s["start"] for s in manifest["scenes"][1:]]
    assert [s["transition"] for s in manifest["scenes"]] == [
        {
            "type": s.transition,
            "frames": s.transition_frames,
            "duration": s.transition_frames / 30,
        }
        for s in scenes
    ]
    assert manifest["output"]["frames"] == 180
    assert manifest["models"] == [
        {"key": "photo", "revision": "1"},
        {"key": "assembly", "revision": ASSEMBLY_ENGINE_VERSION},
    ]
    assert {s["model"] for s in manifest["scenes"]} == {"photo"}
    # The style's grade, on every scene (Quick mode plans none other).
    assert {json.dumps(s["grade"]) for s in manifest["scenes"]} == {
        json.dumps({"preset": "cinematic_teal_orange", "intensity": 0.7})
    }
    assert all(s["prompt"] for s in manifest["scenes"])
    assert set(manifest["timings"]) == {
        "analyze",
        "character",
        "plan",
        "scenes",
        "assemble",
    }
    # The same manifest travels inside the video file.
    with default_storage.open(render.file) as handle, av.open(handle.name) as video:
        embedded = json.loads(video.metadata["studio_manifest"])
    assert embedded["scenes"] == manifest["scenes"]
    assert embedded["project"] == {"id": project.pk, "title": project.title}
    # What describes one run only stays in the row: identical renders make
    # identical files, so the cache can hand one out for the other.
    assert "job" not in embedded and "timings" not in embedded


def test_the_assemble_stage_reports_frames_as_it_renders(project):
    job = create_render_job(project)
    messages: list[tuple[float, str]] = []

    def listen(payload):
        if payload["job"] == job.pk and payload["stage"] == "assemble":
            messages.append((payload["progress"], payload["message"]))

    add_listener(listen)
    try:
        run_inline(job.pk, render_canvas(job), RENDER_ERROR_CALLBACK)
    finally:
        remove_listener(listen)

    framed = [(p, m) for p, m in messages if m.startswith("frame ")]
    assert framed[-1][1] == "frame 180 of 180"
    assert len(framed) <= 102  # about every 1 %, not every frame
    progress = [p for p, _ in framed]
    assert progress == sorted(progress)
    assert 0.85 <= progress[0] and progress[-1] <= 0.99


def test_a_second_render_reuses_the_analysis_and_the_photos(project):
    from projects.models import AudioAnalysis

    first = render_now(project)
    second = render_now(project)

    assert second.status == Job.Status.SUCCEEDED
    assert AudioAnalysis.objects.count() == 1
    for job in (first, second):
        for scene in Scene.objects.filter(job=job).select_related("image"):
            # Stills need no clip of their own: the scene's source is the photo.
            assert scene.clip == scene.image.file.name
    assert not list(Path(default_storage.location).glob("cache/clips/*"))


@pytest.mark.parametrize(
    ("style", "grade"),
    [
        ("cinematic", {"preset": "cinematic_teal_orange", "intensity": 0.7}),
        ("dreamy", {"preset": "pastel", "intensity": 0.6}),
        ("energetic", {"preset": "neon", "intensity": 0.5}),
        ("neon_noir", {"preset": "neon", "intensity": 0.6}),
        ("documentary", None),
    ],
)
def test_each_style_grades_its_scenes(style, grade):
    preset = get_style(style)
    scene = SimpleNamespace(
        grade=preset.grade or "", grade_intensity=preset.grade_intensity
    )
    assert scene_grade(scene) == grade
    if grade is not None:
        assert grade["preset"] in GRADES


def test_the_timeline_overlaps_clips_by_their_centred_transitions(tmp_path):
    def scene(start, end, transition="cut", frames=0, move="zoom_in"):
        return SimpleNamespace(
            start_frame=start,
            end_frame=end,
            transition=transition,
            transition_frames=frames,
            move=move,
            focus_x=0.5,
            focus_y=0.5,
            clip="",  # the photo is the source
        )

    scenes = [
        scene(0, 60, "crossfade", 15),
        scene(60, 120, "dissolve", 8),
        scene(120, 150, "cut", 0),
        scene(150, 200, "cut", 0),
    ]
    photo, song = tmp_path / "a.png", tmp_path / "song.wav"
    doc = build_timeline(
        scenes,
        [photo] * 4,
        song=song,
        output=get_preset("preview"),
        fmt="mp4",
        beats=[0.5, 1.0, 99.0],
    )

    timeline = load_timeline(doc)  # contiguity is the validator's to check
    slots = [(round(c.start * 30), round(c.end * 30)) for c in timeline.clips]
    # 15 frames on cut 60: [53, 68); 8 frames on cut 120: [116, 124).
    assert slots == [(0, 68), (53, 124), (116, 150), (150, 200)]
    assert [c.transition and c.transition.type for c in timeline.clips] == [
        "crossfade",
        "dissolve",
        "cut",
        None,
    ]
    assert timeline.output.duration == 200 / 30
    assert timeline.grade is None
    assert timeline.audio[0].fade_out == 0.5
    assert list(timeline.beats) == [0.5, 1.0]
    assert list(timeline.cuts) == [2.0, 4.0, 5.0]


def test_a_project_without_music_is_not_ready(alice, sample_files):
    project = ProjectFactory(owner=alice)
    add_asset_from_path(project, sample_files["astronaut"])

    with pytest.raises(RenderNotReady, match="a song"):
        render_now(project)
    assert not Job.objects.exists()


def test_a_failing_stage_fails_the_job_once_and_leaves_no_files(
    alice, sample_files, tmp_path, settings, django_capture_on_commit_callbacks
):
    project = ProjectFactory(owner=alice)
    add_asset_from_path(project, sample_files["astronaut"])
    song = add_asset_from_path(project, sample_files["song"])
    # The stored song is damaged after upload: analysis must fail cleanly.
    Path(default_storage.path(song.file.name)).write_bytes(b"\x00" * 4096)

    # The project follows its job once the failure is committed.
    with django_capture_on_commit_callbacks(execute=True):
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
    # Quick mode off: it would look at the photo first (see the next test).
    project = ProjectFactory(
        owner=alice, target_duration=6.0, preset="preview", auto_character=False
    )
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
        run_inline(job.pk, render_canvas(job), RENDER_ERROR_CALLBACK)
    finally:
        remove_listener(listen)

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "scene 0: astronaut.png: not an image that can be read"
    assert len(sent) == 1
    assert Scene.objects.filter(job=job, status=Scene.Status.FAILED).exists()
    assert not (Path(settings.MEDIA_ROOT) / "renders").exists()
    assert not list(Path(settings.STUDIO_WORK_DIR).glob("*"))


def test_quick_mode_names_a_damaged_photo_before_any_scene_is_made(
    alice, sample_files, settings
):
    project = ProjectFactory(owner=alice, target_duration=6.0, preset="preview")
    photo = add_asset_from_path(project, sample_files["astronaut"])
    add_asset_from_path(project, sample_files["song"])
    Path(default_storage.path(photo.file.name)).write_bytes(
        b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    )

    job = render_now(project)

    assert job.status == Job.Status.FAILED
    assert job.error == "astronaut.png: not a picture that can be read"
    assert not Scene.objects.filter(job=job).exists()
    project.refresh_from_db()
    assert project.character is None
    assert not (Path(settings.MEDIA_ROOT) / "characters").exists()
    assert not list(Path(settings.STUDIO_WORK_DIR).glob("*"))


def test_a_failing_assembly_fails_the_job_with_the_upload_named_and_no_files(
    project, settings
):
    song = project.music()
    ensure_analysis(song)  # analysed before the stored song was damaged
    Path(default_storage.path(song.file.name)).write_bytes(b"RIFF" + b"\0" * 4096)

    job = render_now(project)

    assert job.status == Job.Status.FAILED
    assert "song.wav" in job.error
    assert Path(song.file.name).name not in job.error
    assert "Traceback" not in job.error
    assert not Render.objects.filter(job=job).exists()
    assert not (Path(settings.MEDIA_ROOT) / "renders").exists()
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
        lambda task, canvas: fanned_out.append(
            [header.args[0] for header in canvas.tasks]
        ),
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
    assert (scene.status, scene.clip) == (Scene.Status.DONE, scene.image.file.name)

    render_scene.apply(args=(scene.pk,))

    again = Scene.objects.get(pk=scene.pk)
    assert (again.status, again.seconds) == (Scene.Status.DONE, scene.seconds)
    assert again.clip == scene.clip


def test_a_render_uses_the_song_it_was_started_with(project, sample_files, tmp_path):
    job = create_render_job(project)
    from workers.audio.synth import SongSpec, synthesize_song, write_wav

    other = write_wav(
        tmp_path / "other.wav",
        synthesize_song(SongSpec(bpm=90.0, seed=3, sections=(("verse", 4),))),
    )
    add_asset_from_path(project, other)  # uploaded while the job waits

    run_inline(job.pk, render_canvas(job), RENDER_ERROR_CALLBACK)

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
    Job.objects.filter(pk=stuck.pk).update(
        status=Job.Status.RUNNING, dispatched_at=timezone.now()
    )
    with pytest.raises(RenderInProgress):
        start_render(project)  # a live render does block a second one

    long_ago = timezone.now() - timedelta(seconds=settings.STUDIO_STALE_JOB_S + 60)
    Job.objects.filter(pk=stuck.pk).update(updated_at=long_ago)
    fresh = start_render(project)

    stuck.refresh_from_db()
    assert stuck.status == Job.Status.FAILED
    assert "stopped reporting" in stuck.error
    assert fresh.pk != stuck.pk and fresh.status == Job.Status.QUEUED
