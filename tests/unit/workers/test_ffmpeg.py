from __future__ import annotations

from pathlib import Path

import pytest

from workers.assembly.ffmpeg import (
    FFmpegError,
    demuxer_name,
    ffmpeg_exe,
    input_args,
    run_ffmpeg,
)
from workers.probe import probe_media


def _transcode_args(source: Path) -> list[str]:
    # Frequent progress reports so even a short job reports several times.
    return ["-stats_period", "0.05", *input_args(source, fmt="wav"), "-c:a", "flac"]


def test_it_writes_the_output_and_reports_progress_up_to_one(tmp_path, song_wav):
    out = tmp_path / "song.flac"
    seen: list[float] = []
    run_ffmpeg(_transcode_args(song_wav), output=out, total_seconds=12.0,
               on_progress=seen.append)  # fmt: skip
    assert probe_media(out).of_kind("audio")[0].codec == "flac"
    assert seen[-1] == 1.0
    assert seen == sorted(seen) and all(0.0 <= f <= 1.0 for f in seen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.flac"]


def test_a_failure_leaves_no_file_and_explains_itself(tmp_path):
    out = tmp_path / "out.flac"
    missing = tmp_path / "missing.wav"
    with pytest.raises(FFmpegError, match="missing.wav") as err:
        run_ffmpeg([*input_args(missing), "-c:a", "flac"], output=out)
    assert "ffmpeg version" not in str(err.value)  # the tail, not the whole log
    assert list(tmp_path.iterdir()) == []


def test_a_failure_keeps_an_older_output_untouched(tmp_path):
    out = tmp_path / "out.flac"
    out.write_bytes(b"previous render")
    with pytest.raises(FFmpegError):
        run_ffmpeg([*input_args(tmp_path / "nope.wav")], output=out)
    assert out.read_bytes() == b"previous render"
    assert [p.name for p in tmp_path.iterdir()] == ["out.flac"]


def test_an_interrupt_kills_ffmpeg_and_removes_the_partial_file(tmp_path, song_wav):
    def interrupt(_fraction: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_ffmpeg(_transcode_args(song_wav), output=tmp_path / "x.flac",
                   total_seconds=12.0, on_progress=interrupt)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_an_error_in_the_progress_callback_becomes_an_ffmpeg_error(tmp_path, song_wav):
    def broken(_fraction: float) -> None:
        raise RuntimeError("socket closed")

    with pytest.raises(FFmpegError, match="socket closed"):
        run_ffmpeg(_transcode_args(song_wav), output=tmp_path / "x.flac",
                   total_seconds=12.0, on_progress=broken)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_studio_ffmpeg_overrides_the_binary(tmp_path, monkeypatch, song_wav):
    monkeypatch.setenv("STUDIO_FFMPEG", str(tmp_path / "no-such-ffmpeg"))
    assert ffmpeg_exe() == str(tmp_path / "no-such-ffmpeg")
    with pytest.raises(FFmpegError, match="could not start"):
        run_ffmpeg(_transcode_args(song_wav), output=tmp_path / "x.flac")
    assert list(tmp_path.iterdir()) == []


def test_inputs_are_local_files_only():
    args = input_args(Path("-rf.jpg"), fmt="image2")
    assert args[:2] == ["-protocol_whitelist", "file"]
    assert args[2:6] == ["-f", "image2", "-pattern_type", "none"]
    assert Path(args[-1]).is_absolute()


def test_demuxers_that_follow_references_are_never_forced():
    assert demuxer_name("mov,mp4,m4a,3gp,3g2,mj2") == "mov"
    assert demuxer_name("hls") is None
    assert demuxer_name("concat") is None
