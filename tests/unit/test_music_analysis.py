"""Music analysis as the studio uses it: ``manage.py analyze_audio``, the
analysis job started by an upload, the stored result (once per song) and the
song's picture on the page and in the API."""

from __future__ import annotations

import json
import subprocess
import wave
from io import StringIO
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from imageio_ffmpeg import get_ffmpeg_exe
from PIL import Image

from media_jobs.models import Job
from media_jobs.orchestration import pipeline, run_inline
from projects.models import AudioAnalysis
from projects.tasks import analyze_song
from projects.uploads import add_asset_from_path
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

CONTRACT = ["duration", "bpm", "bpm_confidence", "beats", "downbeats", "onsets",
            "sections", "energy"]  # fmt: skip


def _wav(path: Path, seconds: float, rate: int = 22050, signal=None) -> Path:
    samples = np.zeros(int(seconds * rate)) if signal is None else signal
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def _analyse(path: Path) -> dict:
    out = StringIO()
    call_command("analyze_audio", str(path), "--json", stdout=out)
    return json.loads(out.getvalue())


def test_analyze_audio_prints_the_contract_and_analyses_a_song_once(sample_files):
    first = _analyse(sample_files["song"])
    stored = AudioAnalysis.objects.get()
    second = _analyse(sample_files["song"])

    assert list(first)[: len(CONTRACT)] == CONTRACT
    assert first == second
    assert AudioAnalysis.objects.count() == 1
    assert AudioAnalysis.objects.get().created_at == stored.created_at
    assert first["bpm"] == pytest.approx(120.0, rel=0.02)
    assert set(first["energy"]) == {"hop_s", "values"}
    assert all({"start", "end", "label"} <= set(s) for s in first["sections"])
    truth = sample_files["song_truth"].beats
    assert max(min(abs(b - t) for t in truth) for b in first["beats"]) < 0.02


def test_analyze_audio_draws_the_picture(sample_files, tmp_path):
    svg = tmp_path / "song.svg"
    call_command("analyze_audio", str(sample_files["song"]), "--svg", str(svg),
                 stdout=StringIO())  # fmt: skip
    root = ElementTree.fromstring(svg.read_text())
    assert root.tag.endswith("svg")
    assert "script" not in svg.read_text().lower()


def _corrupt_mp3(tmp_path: Path, song: Path) -> Path:
    mp3 = tmp_path / "song.mp3"
    ffmpeg = [get_ffmpeg_exe(), "-v", "error", "-y"]
    subprocess.run([*ffmpeg, "-i", str(song), "-b:a", "128k", str(mp3)], check=True)
    data = bytearray(mp3.read_bytes())
    data[2000:] = np.random.default_rng(0).bytes(len(data) - 2000)
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(bytes(data))
    return broken


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp, files: _wav(tmp / "silence.wav", 10.0), "silent"),
        (
            lambda tmp, files: _wav(
                tmp / "short.wav", 2.0, signal=np.sin(np.arange(44100) / 7.0)
            ),
            "only 2.0 s",
        ),  # fmt: skip
        (lambda tmp, files: _wav(tmp / "hour.wav", 3600.0, rate=8000), "limit"),
        (lambda tmp, files: _corrupt_mp3(tmp, files["song"]), "broken.mp3"),
        (lambda tmp, files: _png(tmp / "cover.png"), "cover.png"),
    ],
    ids=[
        "silence",
        "two-second-clip",
        "hour-over-the-limit",
        "corrupt-mp3",
        "no-audio",
    ],
)
def test_bad_audio_gets_a_clear_error(tmp_path, sample_files, make, message):
    path = make(tmp_path, sample_files)

    with pytest.raises(CommandError, match=message) as caught:
        call_command("analyze_audio", str(path), "--json", stdout=StringIO())

    assert "Traceback" not in str(caught.value)
    assert not AudioAnalysis.objects.exists()


def _png(path: Path) -> Path:
    Image.new("RGB", (64, 64), "red").save(path)
    return path


def _upload_song(client, project, path: Path):
    with path.open("rb") as handle:
        return client.post(
            reverse("projects:upload", args=[project.pk]), {"files": [handle]}
        )


def test_an_uploaded_song_is_analysed_by_its_own_job(alice, alice_client, sample_files):
    project = ProjectFactory(owner=alice)
    _upload_song(alice_client, project, sample_files["song"])
    job = Job.objects.get(project=project, kind=Job.Kind.ANALYZE)
    assert job.status == Job.Status.QUEUED  # sent once the upload commits

    analyze_song.apply(args=(job.pk,))

    job.refresh_from_db()
    assert (job.status, job.progress) == (Job.Status.SUCCEEDED, 1.0)
    assert "BPM" in job.message
    song = project.music()
    svg = alice_client.get(reverse("projects:asset_analysis_svg", args=[song.pk]))
    assert svg.status_code == 200
    assert svg["Content-Type"].startswith("image/svg+xml")
    assert "sandbox" in svg["Content-Security-Policy"]
    ElementTree.fromstring(svg.content)
    page = alice_client.get(reverse("projects:detail", args=[project.pk])).content
    assert reverse("projects:asset_analysis_svg", args=[song.pk]).encode() in page
    api = alice_client.get(f"/api/assets/{song.pk}/analysis/")
    assert api.status_code == 200
    assert list(api.json())[: len(CONTRACT)] == CONTRACT
    assert alice_client.get(f"/api/assets/{song.pk}/picture/").status_code == 200


def test_a_silent_upload_fails_its_analysis_job_with_the_reason(
    alice, alice_client, tmp_path
):
    project = ProjectFactory(owner=alice)
    _upload_song(alice_client, project, _wav(tmp_path / "quiet.wav", 8.0))
    job = Job.objects.get(project=project, kind=Job.Kind.ANALYZE)

    run_inline(
        job.pk,
        pipeline(job.pk, ["projects.analyze_song"], on_error="projects.job_failed"),
        "projects.job_failed",
    )

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "quiet.wav: The audio is silent, so it has no beat to follow."
    assert not AudioAnalysis.objects.exists()


def test_another_users_song_picture_and_analysis_are_not_found(
    alice, charlie_client, sample_files
):
    project = ProjectFactory(owner=alice)
    song = add_asset_from_path(project, sample_files["song"])
    job = Job.objects.create(
        owner=alice, project=project, kind=Job.Kind.ANALYZE, params={"asset": song.pk}
    )
    analyze_song.apply(args=(job.pk,))

    assert (
        charlie_client.get(
            reverse("projects:asset_analysis_svg", args=[song.pk])
        ).status_code
        == 404
    )
    assert charlie_client.get(f"/api/assets/{song.pk}/analysis/").status_code == 404
    assert charlie_client.get(f"/api/assets/{song.pk}/picture/").status_code == 404
