"""The command-line contracts: ``manage.py render`` and ``manage.py demo``."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from projects.management.commands.demo import DEMO_SONG
from projects.models import Scene
from tests.media_checks import nearest_distance
from tests.unit.conftest import changes, joins_match, planned_windows
from workers.audio.synth import synthesize_song
from workers.probe import probe_media

pytestmark = pytest.mark.django_db


def test_demo_renders_h264_aac_with_its_transitions_on_the_beats(tmp_path):
    out = tmp_path / "demo.mp4"
    stdout = StringIO()

    # 14 s of the demo song: a section change at 8 s, then a cut every 2 bars.
    call_command("demo", "-o", str(out), "--preset", "preview", "--duration", "14",
                 stdout=stdout, stderr=StringIO())  # fmt: skip

    info = probe_media(out)
    video = info.of_kind("video")
    assert [s.codec for s in video] == ["h264"]
    assert [s.codec for s in info.of_kind("audio")] == ["aac"]
    fps = video[0].fps
    scenes = list(Scene.objects.order_by("index"))
    assert scenes[-1].end_frame == 14 * 30
    assert info.duration == pytest.approx(14.0, abs=1e-3)
    assert len(scenes) >= 3
    assert joins_match(changes(out), planned_windows(scenes))
    beats = synthesize_song(DEMO_SONG).beats
    assert all(
        nearest_distance(s.start_frame / fps, beats) <= 1 / fps for s in scenes[1:]
    )
    assert str(out.resolve()) in stdout.getvalue()


def test_render_json_prints_the_manifest(tmp_path, sample_files):
    out = tmp_path / "video.webm"
    stdout = StringIO()

    call_command(
        "render",
        "--image", str(sample_files["astronaut"]),
        "--image", str(sample_files["hopper"]),
        "--audio", str(sample_files["song"]),
        "--duration", "5",
        "--preset", "preview",
        "--format", "webm",
        "-o", str(out),
        "--json", "--quiet",
        stdout=stdout, stderr=StringIO(),
    )  # fmt: skip

    manifest = json.loads(stdout.getvalue())
    assert manifest["file"] == str(out)
    assert manifest["output"]["format"] == "webm"
    assert manifest["output"]["frames"] == 150
    assert len(manifest["scenes"]) == len(manifest["cuts"]) + 1
    assert manifest["scenes"][-1]["transition"]["type"] == "cut"
    assert all(s["transition"]["type"] for s in manifest["scenes"])
    assert {s["image"]["name"] for s in manifest["scenes"]} == {
        "astronaut.png",
        "grace_hopper.jpg",
    }
    info = probe_media(out)
    assert [s.codec for s in info.of_kind("video")] == ["vp9"]
    assert [s.codec for s in info.of_kind("audio")] == ["opus"]


def test_render_refuses_a_song_that_is_not_audio(tmp_path, sample_files):
    fake = tmp_path / "song.mp3"
    fake.write_text("not really a song\n")

    with pytest.raises(CommandError, match="song.mp3"):
        call_command(
            "render",
            "--image", str(sample_files["astronaut"]),
            "--audio", str(fake),
            "-o", str(tmp_path / "x.mp4"),
            "--quiet",
            stdout=StringIO(),
            stderr=StringIO(),
        )  # fmt: skip
    assert not (tmp_path / "x.mp4").exists()


def test_render_reports_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command(
            "render",
            "--image", str(tmp_path / "nope.png"),
            "--audio", str(tmp_path / "nope.wav"),
            "-o", str(tmp_path / "x.mp4"),
        )  # fmt: skip


def _edit(folder, **extra):
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((360, 640, 3), (200, 80, 40), np.uint8)).save(
        folder / "a.png"
    )
    Image.fromarray(np.full((360, 640, 3), (30, 90, 220), np.uint8)).save(
        folder / "b.png"
    )
    doc = {
        "version": 1,
        "output": {"width": 320, "height": 180, "fps": 30},
        "clips": [
            {"source": {"kind": "still", "file": "a.png"}, "start": 0,
             "duration": 1.0, "move": "zoom_in",
             "transition": {"type": "crossfade", "duration": 0.2}},
            {"source": {"kind": "still", "file": "b.png"}, "start": 0.8,
             "duration": 1.0},
        ],
        **extra,
    }  # fmt: skip
    path = folder / "edit.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_render_timeline_renders_a_document_with_files_beside_it(tmp_path):
    edit = _edit(tmp_path)
    out = tmp_path / "out" / "edit.mp4"
    stdout = StringIO()

    call_command("render_timeline", str(edit), "-o", str(out), "--json",
                 stdout=stdout, stderr=StringIO())  # fmt: skip

    report = json.loads(stdout.getvalue())
    assert report["frames"] == 54  # 1.8 s at 30 fps
    stream = probe_media(out).of_kind("video")[0]
    assert (stream.width, stream.height, stream.frames) == (320, 180, 54)


def test_render_timeline_names_the_bad_field(tmp_path):
    edit = _edit(tmp_path, grade={"preset": "sepia"})
    with pytest.raises(CommandError, match=r"grade\.preset"):
        call_command("render_timeline", str(edit), "-o", str(tmp_path / "x.mp4"),
                     stdout=StringIO(), stderr=StringIO())  # fmt: skip
    assert not (tmp_path / "x.mp4").exists()
