"""The storyboard in the studio: planned by a render or a storyboard job,
edited scene by scene in Advanced mode (only the edited scene is made
again), scripts from the project's documents, style presets from the
database, and the LLM stage against a local OpenAI-compatible server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from media_jobs.models import CacheEntry, Job
from projects.models import Project, Scene, Shot, Storyboard, StylePreset
from projects.pipeline import plan_now, render_now
from projects.storyboards import StoryboardError, edit_shot
from projects.uploads import UploadRejected, add_asset_from_path
from tests.factories import ProjectFactory
from tests.unit.workers.test_scripts import make_pdf


@pytest.fixture
def project(alice, sample_files) -> Project:
    project = ProjectFactory(owner=alice, target_duration=8.0, preset="preview")
    add_asset_from_path(project, sample_files["astronaut"])
    add_asset_from_path(project, sample_files["hopper"])
    add_asset_from_path(project, sample_files["song"])
    return project


def _shots(project: Project) -> list[Shot]:
    return list(Shot.objects.filter(storyboard__project=project).order_by("index"))


def _scenes(job: Job) -> list[Scene]:
    return list(Scene.objects.filter(job=job).order_by("index"))


def test_a_storyboard_job_plans_every_scene_with_a_prompt_and_renders_nothing(
    project,
):
    job = plan_now(project, seed=11)

    assert job.status == Job.Status.SUCCEEDED, job.error
    board = Storyboard.objects.get(project=project)
    shots = _shots(project)
    assert len(shots) >= 2
    assert shots[0].start_frame == 0
    assert shots[-1].end_frame == board.frames == round(8.0 * board.fps)
    assert {s.image.original_name for s in shots} == {
        "astronaut.png",
        "grace_hopper.jpg",
    }
    for shot in shots:
        assert shot.prompt and shot.negative_prompt
        assert set(shot.stage_sources.values()) == {"template"}
        assert shot.grade == "cinematic_teal_orange"
    assert not Scene.objects.filter(project=project).exists()
    assert not project.renders.exists()
    project.refresh_from_db()
    assert project.status == Project.Status.DRAFT


def test_the_same_seed_plans_the_same_storyboard(project):
    plan_now(project, seed=11)
    first = [(s.start_frame, s.move, s.seed, s.prompt) for s in _shots(project)]
    plan_now(project, seed=11)
    again = [(s.start_frame, s.move, s.seed, s.prompt) for s in _shots(project)]

    assert again == first


def test_an_advanced_edit_makes_only_the_edited_scene_again(project):
    project.mode = Project.Mode.ADVANCED
    project.save()
    plan_now(project, seed=11)
    first = render_now(project)
    assert first.status == Job.Status.SUCCEEDED, first.error
    assert not any(s.cached for s in _scenes(first))

    shot = _shots(project)[1]
    edit_shot(shot, {"user_stages": {"concept": "a lone figure on a rooftop"}})
    second = render_now(project)

    assert second.status == Job.Status.SUCCEEDED, second.error
    scenes = _scenes(second)
    assert [s.cached for s in scenes] == [s.index != 1 for s in scenes]
    assert scenes[1].prompt.startswith("a lone figure on a rooftop")
    before = {s.index: s.fingerprint for s in _scenes(first)}
    assert [s.fingerprint == before[s.index] for s in scenes] == [
        s.index != 1 for s in scenes
    ]
    # The render took the storyboard as it stood: nothing waits any more.
    assert not Shot.objects.filter(storyboard__project=project, edited=True).exists()


def test_an_edit_marks_its_scene_and_turns_the_project_to_advanced(project):
    job = render_now(project)  # Quick mode: the render plans the storyboard
    assert job.status == Job.Status.SUCCEEDED, job.error
    project.refresh_from_db()
    assert project.mode == Project.Mode.QUICK
    shot = _shots(project)[0]

    changed = edit_shot(shot, {"move": "static", "stages_off": ["narrative"]})

    assert [s.index for s in changed] == [0]
    shots = _shots(project)
    assert [s.edited for s in shots] == [s.index == 0 for s in shots]
    assert shots[0].move == "static"
    assert shots[0].stage_sources["narrative"] == "off"
    assert "locked-off camera" in shots[0].prompt
    project.refresh_from_db()
    assert project.mode == Project.Mode.ADVANCED
    assert Storyboard.objects.get(project=project).version == 2


def test_a_length_edit_moves_the_next_cut_onto_a_beat(project, sample_files):
    plan_now(project, seed=11)
    shot = _shots(project)[0]
    board = shot.storyboard

    changed = edit_shot(shot, {"beats": shot.beats - 2})

    assert [s.index for s in changed][:2] == [0, 1]
    shots = _shots(project)
    beats = sample_files["song_truth"].beats
    cut = shots[0].end_frame / board.fps
    assert min(abs(cut - b) for b in beats) <= 0.5 / board.fps + 0.03
    assert shots[1].start_frame == shots[0].end_frame
    assert shots[-1].end_frame == board.frames


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"move": "spin"}, "unknown camera move"),
        ({"grade": "sepia"}, "unknown grade"),
        ({"motion": 1.5}, "motion strength"),
        ({"model": "nope"}, "not in the registry"),
        ({"prompt": "x"}, "cannot be edited"),
    ],
)
def test_a_bad_edit_says_why_and_changes_nothing(project, changes, message):
    plan_now(project, seed=11)
    shot = _shots(project)[0]
    before = (shot.move, shot.grade, shot.motion, shot.model, shot.prompt)

    with pytest.raises(StoryboardError, match=message):
        edit_shot(shot, changes)

    again = _shots(project)[0]
    assert (again.move, again.grade, again.motion, again.model, again.prompt) == before
    assert not again.edited


def test_the_last_scene_keeps_its_end_and_keyframes_need_a_video_model(project):
    plan_now(project, seed=11)
    shots = _shots(project)

    with pytest.raises(StoryboardError, match="last scene ends with the video"):
        edit_shot(shots[-1], {"beats": 2})
    with pytest.raises(StoryboardError, match="two keyframes"):
        edit_shot(shots[0], {"end_image": shots[1].image.pk})


def test_advanced_mode_refuses_a_storyboard_whose_song_changed(project, sample_files):
    project.mode = Project.Mode.ADVANCED
    project.save()
    plan_now(project, seed=11)
    song = Path(sample_files["song"])
    other = song.parent / "other.wav"
    other.write_bytes(song.read_bytes()[:-4000])
    add_asset_from_path(project, other)

    job = render_now(project)

    assert job.status == Job.Status.FAILED
    assert "the song changed" in job.error


def test_a_markdown_script_sets_the_scenes_and_their_prompts(project, tmp_path):
    script = tmp_path / "script.md"
    script.write_text(
        "---\ntitle: Night walk\ncharacters: [Mara]\n---\n"
        "## 0:00 Mara waits in a neon-lit arcade\nShe counts the coins.\n\n"
        "## 0:04 Empty streets\nRain on the pavement.\n",
        encoding="utf-8",
    )
    add_asset_from_path(project, script)

    plan_now(project, seed=11)

    shots = _shots(project)
    board = shots[0].storyboard
    headings = [s.script_heading for s in shots]
    assert headings[0] == "Mara waits in a neon-lit arcade"
    assert headings[-1] == "Empty streets"
    assert any(abs(s.start_frame / board.fps - 4.0) <= 0.3 for s in shots[1:])
    assert "in a neon-lit arcade" in shots[0].stages["scene"]
    # The script names Mara, and the second scene does not.
    assert shots[0].features_character
    assert not shots[-1].features_character


def test_a_pdf_script_is_read_from_its_text(project, tmp_path):
    pdf = tmp_path / "script.pdf"
    pdf.write_bytes(make_pdf([["0:00 Opening on the pier", "0:04 The storm breaks"]]))
    add_asset_from_path(project, pdf)

    plan_now(project, seed=11)

    headings = {s.script_heading for s in _shots(project)}
    assert headings == {"Opening on the pier", "The storm breaks"}


def test_a_script_the_storyboard_cannot_read_is_refused_at_upload(project, tmp_path):
    script = tmp_path / "broken.md"
    script.write_text("---\ntitle: [unclosed\n---\n## Scene\n", encoding="utf-8")

    with pytest.raises(UploadRejected, match="frontmatter"):
        add_asset_from_path(project, script)

    assert project.script() is None


def test_the_shipped_styles_are_in_the_database_and_an_admin_edit_counts(project):
    assert StylePreset.objects.count() >= 12
    preset = StylePreset.objects.get(key="neon_noir")
    preset.prompt = ["chalk drawing on a blackboard"]
    preset.save()
    project.style = "neon_noir"
    project.save()

    plan_now(project, seed=11)

    assert all("chalk drawing on a blackboard" in s.prompt for s in _shots(project))


def test_an_unknown_style_is_refused_before_any_work(project):
    project.style = "no_such_style"
    project.save()

    with pytest.raises(ValueError, match="unknown style"):
        plan_now(project)


# --- the LLM stage --------------------------------------------------------------


class FakeChat:
    """A local OpenAI-compatible chat endpoint that answers with a rewrite
    of every scene it is asked about, or stalls (``delay``)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.delay = 0.0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "body": body})
                if fake.delay:
                    threading.Event().wait(fake.delay)
                briefs = json.loads(body["messages"][1]["content"])["scenes"]
                reply = {
                    "scenes": [
                        {
                            "index": b["index"],
                            "concept": f"llm concept {b['index']}",
                            "scene": f"llm place {b['index']}",
                            "narrative": f"llm story {b['index']}",
                        }
                        for b in briefs
                    ]
                }
                data = json.dumps(
                    {
                        "choices": [
                            {
                                "message": {"content": json.dumps(reply)},
                                "finish_reason": "stop",
                            }
                        ]
                    }
                ).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout test)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def chat(settings):
    fake = FakeChat()
    settings.STUDIO_LLM_BASE_URL = fake.url
    settings.STUDIO_LLM_MODEL = "local-test"
    settings.STUDIO_LLM_TIMEOUT = 0.5
    yield fake
    fake.server.shutdown()


def test_the_llm_writes_the_story_stages_and_is_asked_once(project, chat):
    plan_now(project, seed=11)
    shots = _shots(project)

    assert len(chat.requests) == 1
    assert chat.requests[0]["path"] == "/v1/chat/completions"
    assert chat.requests[0]["body"]["model"] == "local-test"
    for shot in shots:
        assert shot.stages["concept"] == f"llm concept {shot.index}"
        assert shot.stage_sources["concept"] == "llm"
        assert shot.stage_sources["visual"] == "template"
        assert f"llm concept {shot.index}" in shot.prompt
    assert Storyboard.objects.get(project=project).llm["used"] is True

    plan_now(project, seed=11)  # the same storyboard: from the cache

    assert len(chat.requests) == 1
    assert CacheEntry.objects.filter(kind=CacheEntry.Kind.PROMPTS).count() == 1


def test_a_stalled_llm_falls_back_to_the_templates_and_says_so(project, chat):
    chat.delay = 3.0

    job = plan_now(project, seed=11)

    assert job.status == Job.Status.SUCCEEDED, job.error
    board = Storyboard.objects.get(project=project)
    assert board.llm["used"] is False
    assert any("LLM stage failed (timeout)" in note for note in board.notes)
    assert all(set(s.stage_sources.values()) == {"template"} for s in _shots(project))
    assert not CacheEntry.objects.filter(kind=CacheEntry.Kind.PROMPTS).exists()


# --- models and render settings ---------------------------------------------------


@pytest.fixture
def gpu_model(settings):
    """A generator that needs 12 GB of GPU memory (the drifting test engine
    stands in for it), and no memory of which queues were served."""
    from media_jobs.models import ModelSpec
    from projects.scene_engines import engines

    settings.STUDIO_SCENE_ENGINES = ["tests.engines:DriftingEngine"]
    engines.cache_clear()
    ModelSpec.objects.create(
        key="big-gen", name="A 12 GB generator", kind=ModelSpec.Kind.VIDEO,
        engine="drift-test", revision="1", vram_gb=12.0, quality=8, speed=2,
    )  # fmt: skip
    yield "big-gen"
    engines.cache_clear()


def test_the_planner_takes_a_gpu_model_only_while_its_queue_is_served(
    project, gpu_model, settings
):
    from projects.storyboards import available_models

    # No worker has reported a heartbeat: only the CPU is served.
    settings.CELERY_TASK_ALWAYS_EAGER = False
    assert {m.key for m in available_models()} == {"photo"}

    # A 16 GB card's worker reports, then falls silent.
    from datetime import timedelta

    from django.utils import timezone

    from media_jobs.models import WorkerHeartbeat

    beat = WorkerHeartbeat.objects.create(
        name="gpu16@host#1", hostname="gpu16@host",
        queues=["gpu-16", "gpu-8", "cpu", "io"],
    )  # fmt: skip
    assert {m.key for m in available_models()} == {"photo", gpu_model}
    beat.last_seen = timezone.now() - timedelta(
        seconds=settings.STUDIO_HEARTBEAT_STALE_S + 1
    )
    beat.save()
    assert {m.key for m in available_models()} == {"photo"}

    # In-process (the embedded default) every queue is served here.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    by_key = {m.key: m for m in available_models()}
    assert set(by_key) == {"photo", gpu_model}
    assert by_key[gpu_model].kind == "video"
    plan_now(project, seed=11)
    assert {s.model for s in _shots(project)} == {gpu_model}
    plan_now(project, seed=11, preference="speed")
    assert {s.model for s in _shots(project)} == {"photo"}


def test_an_advanced_storyboard_renders_at_its_own_size_and_frame_rate(project):
    project.mode = Project.Mode.ADVANCED
    project.save()
    plan_now(project, seed=11, fps=24, width=480, height=270, format="webm")
    board = Storyboard.objects.get(project=project)
    assert (board.fps, board.width, board.height) == (24, 480, 270)
    assert _shots(project)[-1].end_frame == round(8.0 * 24)

    job = render_now(project)

    assert job.status == Job.Status.SUCCEEDED, job.error
    render = project.renders.get(job=job)
    assert (render.width, render.height, render.fps) == (480, 270, 24)
    assert render.output_format == "webm"
    assert render.manifest["output"]["frames"] == round(8.0 * 24)


def test_a_planned_storyboard_is_the_one_the_next_render_makes(project):
    plan_now(project, seed=5, style="anime")
    project.refresh_from_db()
    assert project.mode == Project.Mode.ADVANCED
    planned = [(s.seed, s.prompt) for s in _shots(project)]

    job = render_now(project)

    assert job.status == Job.Status.SUCCEEDED, job.error
    assert [(s.seed, s.prompt) for s in _scenes(job)] == planned
    assert all("anime key visual" in prompt for _, prompt in planned)
    assert job.params["style"] == "anime"


def test_a_render_asking_for_another_length_than_its_storyboard_is_refused(project):
    plan_now(project, seed=5)

    job = render_now(project, duration=4.0)

    assert job.status == Job.Status.FAILED
    assert "the storyboard lasts 8 s, not 4 s" in job.error


def test_a_longer_scene_keeps_every_join_within_the_scenes_it_joins(project):
    project.target_duration = 12.0
    project.save()
    plan_now(project, seed=5)
    shots = _shots(project)
    assert len(shots) >= 3
    board = shots[0].storyboard
    # Long transitions everywhere, then scene 0 takes most of scene 1.
    for shot in shots[:-1]:
        edit_shot(shot, {"transition": "crossfade", "transition_beats": 8})
    edit_shot(_shots(project)[0], {"beats": _shots(project)[0].beats + 3})

    shots = _shots(project)
    for a, b in zip(shots, shots[1:], strict=False):
        longest = min(a.end_frame - a.start_frame, b.end_frame - b.start_frame)
        assert a.transition_frames <= longest // 2
    assert shots[-1].end_frame == board.frames
    job = render_now(project)
    assert job.status == Job.Status.SUCCEEDED, job.error
