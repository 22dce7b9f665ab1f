"""The command-line contracts: ``manage.py render`` and ``manage.py demo``."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from projects.management.commands.demo import DEMO_SONG
from tests.media_checks import detect_cuts, nearest_distance
from workers.audio.synth import synthesize_song
from workers.probe import probe_media

pytestmark = pytest.mark.django_db


def test_demo_renders_h264_aac_with_every_cut_on_a_beat(tmp_path):
    out = tmp_path / "demo.mp4"
    stdout = StringIO()

    call_command("demo", "-o", str(out), "--preset", "preview", "--duration", "8",
                 stdout=stdout, stderr=StringIO())  # fmt: skip

    info = probe_media(out)
    video = info.of_kind("video")
    assert [s.codec for s in video] == ["h264"]
    assert [s.codec for s in info.of_kind("audio")] == ["aac"]
    fps = video[0].fps
    assert abs(info.duration - 8.0) <= 1 / fps
    beats = synthesize_song(DEMO_SONG).beats
    cuts = detect_cuts(out)
    assert len(cuts) >= 2
    assert all(nearest_distance(frame / fps, beats) <= 1 / fps for frame in cuts)
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
