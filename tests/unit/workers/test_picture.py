"""The song's picture: a well-formed, self-contained, deterministic SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from workers.audio.analysis import analyze_audio
from workers.audio.picture import render_waveform_svg

NS = {"svg": "http://www.w3.org/2000/svg"}


@pytest.fixture(scope="module")
def analysed(song_wav):
    return analyze_audio(song_wav)


def _group(root: ET.Element, name: str) -> ET.Element:
    found = root.find(f"svg:g[@class='{name}']", NS)
    assert found is not None, name
    return found


def test_it_draws_every_beat_downbeat_and_section(analysed):
    svg = analysed.to_svg()
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("width") == "1200" and root.get("height") == "240"
    assert len(_group(root, "beats").findall("svg:line", NS)) == len(analysed.beats)
    downbeats = _group(root, "downbeats").findall("svg:line", NS)
    assert len(downbeats) == len(analysed.downbeats)
    bands = _group(root, "sections").findall("svg:rect", NS)
    assert len(bands) == len(analysed.sections)
    assert [b.get("data-label") for b in bands] == [
        s["label"] for s in analysed.sections
    ]
    assert root.find("svg:path[@class='waveform']", NS) is not None
    assert root.find("svg:path[@class='energy']", NS) is not None
    assert "0:10" in svg  # the time axis


def test_it_is_self_contained_and_small(analysed):
    svg = analysed.to_svg()
    lowered = svg.lower()
    for banned in ("<script", "href", "url(", "<image", "<foreignobject", "onload"):
        assert banned not in lowered
    assert len(svg) < 200_000


def test_it_is_deterministic(analysed):
    assert analysed.to_svg() == analysed.to_svg()
    again = render_waveform_svg(analysed.peaks, analysed.to_dict())
    assert again == analysed.to_svg()


def test_labels_are_escaped():
    analysis = {
        "duration": 10.0,
        "bpm": 100.0,
        "beats": [1.0, 2.0],
        "downbeats": [1.0],
        "sections": [{"start": 0.0, "end": 10.0, "label": '<script>"&'}],
        "energy": {"hop_s": 0.05, "values": [-20.0] * 201},
    }
    samples = np.sin(np.linspace(0, 200, 22050 * 10))
    svg = render_waveform_svg(samples, analysis, width=400, height=120)
    root = ET.fromstring(svg)  # still well-formed
    assert "<script" not in svg
    band = _group(root, "sections").find("svg:rect", NS)
    assert band is not None and band.get("data-label") == '<script>"&'


def test_samples_and_a_coarse_envelope_both_draw():
    analysis = {"duration": 4.0, "beats": [], "sections": []}
    from_samples = render_waveform_svg(np.zeros(1000), analysis, width=300)
    from_envelope = render_waveform_svg(np.array([[-0.5, -1.0], [0.5, 1.0]]), analysis)
    for svg in (from_samples, from_envelope):
        ET.fromstring(svg)
    with pytest.raises(ValueError):
        render_waveform_svg(np.zeros((3, 4)), analysis)
