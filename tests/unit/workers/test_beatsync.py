"""Beat-synced cut planning on synthesized analyses (and one real one)."""

from __future__ import annotations

from typing import Any

import pytest

from workers.assembly.beatsync import PUNCH_MAX_S, PlannedCut, plan_beat_sync
from workers.assembly.transitions import MAX_DURATION, TRANSITIONS

FPS = 25
BPM = 120.0
BEAT = 60.0 / BPM
BAR = 4 * BEAT
# (label, bars, LUFS): quiet intro/verses/outro, loud choruses.
LAYOUT = (
    ("intro", 4, -30.0),
    ("verse", 8, -24.0),
    ("chorus", 8, -12.0),
    ("verse", 8, -24.0),
    ("chorus", 8, -12.0),
    ("outro", 4, -26.0),
)
HOP = 0.05


def _analysis(*, downbeats: bool = True) -> dict:
    sections, values = [], []
    t = 0.0
    for label, bars, lufs in LAYOUT:
        end = t + bars * BAR
        sections.append({"start": t, "end": end, "label": label})
        values += [lufs] * round(bars * BAR / HOP)
        t = end
    beats = [i * BEAT for i in range(round(t / BEAT))]
    return {
        "duration": t,
        "bpm": BPM,
        "beats": beats,
        "downbeats": beats[::4] if downbeats else [],
        "sections": sections,
        "energy": {"hop_s": HOP, "values": values},
        "meter": 4,
    }


ANALYSIS = _analysis()
DURATION = float(ANALYSIS["duration"])
SECTION_STARTS = [s["start"] for s in ANALYSIS["sections"][1:]]


def _plan(**kwargs) -> list[PlannedCut]:
    return plan_beat_sync(ANALYSIS, duration=DURATION, fps=FPS, **kwargs)


def _within(cuts: list[PlannedCut], start: float, end: float) -> list[PlannedCut]:
    return [c for c in cuts if start + 1e-6 < c.time < end - 1e-6]


def test_every_cut_within_half_a_frame_of_a_beat() -> None:
    cuts = _plan()
    assert cuts
    beats = ANALYSIS["beats"]
    frames = [c.frame for c in cuts]
    assert frames == sorted(set(frames))
    for cut in cuts:
        assert cut.beat in beats
        assert abs(cut.frame / FPS - cut.beat) <= 0.5 / FPS + 1e-9
        assert cut.time == pytest.approx(cut.frame / FPS)
        assert 0 < cut.frame < round(DURATION * FPS)


def test_odd_fps_still_within_half_a_frame() -> None:
    analysis = _analysis()
    analysis["beats"] = [b + 0.013 for b in analysis["beats"]]
    analysis["downbeats"] = [b + 0.013 for b in analysis["downbeats"]]
    for cut in plan_beat_sync(analysis, duration=DURATION, fps=24):
        assert abs(cut.frame / 24 - cut.beat) <= 0.5 / 24 + 1e-9


def test_every_section_change_is_a_cut_on_a_downbeat() -> None:
    cuts = _plan()
    by_frame = {c.frame: c for c in cuts}
    for start in SECTION_STARTS:
        cut = by_frame[round(start * FPS)]
        assert cut.beat in ANALYSIS["downbeats"]
        assert cut.beat == pytest.approx(start)
        assert cut.reason.startswith("section change")


def test_chorus_cuts_are_denser_than_verse_cuts() -> None:
    cuts = _plan()
    verse = _within(cuts, 8.0, 24.0)
    chorus = _within(cuts, 24.0, 40.0)
    assert len(chorus) > len(verse) >= 1
    # Every bar in the chorus, at most every two bars in the verse.
    assert len(chorus) == 7
    gaps = [b.time - a.time for a, b in zip(verse, verse[1:], strict=False)]
    assert all(g >= 2 * BAR - 1e-6 for g in gaps)


def test_chorus_is_hard_cuts_verses_and_intro_are_dissolves() -> None:
    cuts = _plan()
    for cut in _within(cuts, 24.0, 40.0) + _within(cuts, 56.0, 72.0):
        assert cut.kind == "cut"
        assert cut.duration == 0.0
    for cut in _within(cuts, 8.0, 24.0) + _within(cuts, 40.0, 56.0):
        assert cut.kind in {"crossfade", "dissolve"}
        # One to two beats, rounded to whole frames.
        assert BEAT - 0.5 / FPS <= cut.duration <= 2 * BEAT + 0.5 / FPS
    by_frame = {c.frame: c for c in cuts}
    into_chorus = [by_frame[round(t * FPS)] for t in (24.0, 56.0)]
    assert [c.kind for c in into_chorus] == ["flash", "whip_pan"]
    for cut in into_chorus:
        assert 0 < cut.duration <= PUNCH_MAX_S
    into_calm = [by_frame[round(t * FPS)] for t in (40.0, 72.0)]
    assert all(c.kind == "dip_to_black" for c in into_calm)
    intro_to_verse = by_frame[round(8.0 * FPS)]
    assert intro_to_verse.kind in {"crossfade", "dissolve"}
    assert intro_to_verse.duration >= BEAT - 0.5 / FPS


def _check_durations(cuts: list[PlannedCut], duration: float, fps: int) -> None:
    edges = [0, *(c.frame for c in cuts), round(duration * fps)]
    for i, cut in enumerate(cuts):
        shorter = min(edges[i + 1] - edges[i], edges[i + 2] - edges[i + 1]) / fps
        assert 0.0 <= cut.duration <= MAX_DURATION
        assert cut.duration <= shorter / 2 + 1e-9
        assert cut.duration * fps == pytest.approx(round(cut.duration * fps))
        assert cut.kind in TRANSITIONS
        if cut.kind == "cut":
            assert cut.duration == 0.0


def test_durations_within_limits() -> None:
    _check_durations(_plan(), DURATION, FPS)
    # Short scenes squeeze the transitions (a slow song, short minimum).
    slow = _analysis()
    slow["bpm"] = 30.0
    cuts = plan_beat_sync(slow, duration=DURATION, fps=FPS, min_scene_s=0.5)
    _check_durations(cuts, DURATION, FPS)


def test_palette_is_respected() -> None:
    palette = ["cut", "dissolve", "dip_to_black"]
    cuts = _plan(palette=palette)
    assert {c.kind for c in cuts} <= set(palette)
    assert "dissolve" in {c.kind for c in cuts}
    only = _plan(palette=["wipe_left"])
    assert {c.kind for c in only} <= {"cut", "crossfade"}
    with pytest.raises(ValueError):
        _plan(palette=["no_such_transition"])


def test_no_beats_is_an_error() -> None:
    analysis = _analysis()
    analysis["beats"] = []
    analysis["downbeats"] = []
    with pytest.raises(ValueError):
        plan_beat_sync(analysis, duration=DURATION, fps=FPS)


def test_shorter_than_one_scene_is_one_scene() -> None:
    assert plan_beat_sync(ANALYSIS, duration=1.5, fps=FPS) == []
    assert plan_beat_sync(ANALYSIS, duration=3.0, fps=FPS, min_scene_s=4.0) == []


def test_without_downbeats_cuts_on_beats() -> None:
    analysis = _analysis(downbeats=False)
    cuts = plan_beat_sync(analysis, duration=DURATION, fps=FPS)
    assert cuts
    for cut in cuts:
        assert cut.beat in analysis["beats"]
    assert len(_within(cuts, 24.0, 40.0)) > len(_within(cuts, 8.0, 24.0))


def test_deterministic() -> None:
    assert _plan() == _plan()


def test_flat_energy_cuts_every_two_bars() -> None:
    analysis = _analysis()
    analysis["energy"] = {"hop_s": HOP, "values": [-20.0] * 1600}
    cuts = plan_beat_sync(analysis, duration=DURATION, fps=FPS)
    inner = _within(cuts, 8.0, 24.0)
    assert [c.time for c in inner] == pytest.approx([12.0, 16.0, 20.0])


def test_real_analysis(tmp_path) -> None:
    from workers.audio.analysis import analyze_audio
    from workers.audio.synth import SongSpec, synthesize_song, write_wav

    song = synthesize_song(SongSpec(bpm=120, seed=1))
    result: dict[str, Any] = analyze_audio(
        write_wav(tmp_path / "song.wav", song)
    ).to_dict()
    cuts = plan_beat_sync(result, duration=float(result["duration"]), fps=30)
    assert len(cuts) >= len(result["sections"]) - 1
    beats = set(result["beats"]) | set(result["downbeats"])
    for cut in cuts:
        assert cut.beat in beats
        assert abs(cut.frame / 30 - cut.beat) <= 0.5 / 30 + 1e-9
    _check_durations(cuts, float(result["duration"]), 30)
    assert any(c.kind == "cut" for c in cuts)
    assert any(c.kind != "cut" for c in cuts)
