"""Reading scripts: Markdown with frontmatter, plain text and real PDFs made here."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from workers.storyboard.scripts import (
    MAX_SCENES,
    MAX_SCRIPT_BYTES,
    ScriptError,
    load_script,
    parse_markdown,
    parse_text,
    read_pdf,
)


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal PDF 1.4, one Helvetica text line per entry; "" leaves a gap."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",  # the page tree, once the page numbers are known
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for lines in pages:
        ops = [b"BT /F1 12 Tf 14 TL 72 720 Td"]
        for line in lines:
            if not line:
                ops.append(b"0 -28 Td")  # Td for a paragraph gap, T* for a line
                continue
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(b"(" + escaped.encode("latin-1") + b") Tj T*")
        stream = b"\n".join([*ops, b"ET"]) if lines else b""
        content = len(objects) + 2
        kids.append(f"{len(objects) + 1} 0 R")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
            b" /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % content
        )
        objects.append(
            b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
        )
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    objects[1] = objects[1].encode()
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


FRONTMATTER = """\
---
title: Night Drive
style: neon-noir
characters:
  - name: Mia
    description: a courier   in a yellow coat
  - name: Leo
mood: dark
---
## The city
Mia rides through the rain.
"""


def test_it_reads_frontmatter_fields_and_characters_as_mappings():
    script = parse_markdown(FRONTMATTER)
    assert script.title == "Night Drive"
    assert script.style == "neon-noir"
    assert script.characters == ("Mia", "Leo")
    assert script.character_notes == {"Mia": "a courier in a yellow coat"}
    assert script.notes == ("unknown frontmatter key 'mood' ignored",)


def test_it_reads_characters_given_as_plain_names():
    script = parse_markdown("---\ncharacters: [Mia, Leo]\n---\n## One\nMia.\n")
    assert script.characters == ("Mia", "Leo")
    assert script.character_notes == {}
    assert script.style is None
    assert script.title == ""


def test_it_takes_the_title_from_a_lone_level_one_heading():
    script = parse_markdown("# Night Drive\n\n## Intro\nRain.\n\n## Outro\nSun.\n")
    assert script.title == "Night Drive"
    assert [scene.heading for scene in script.scenes] == ["Intro", "Outro"]


def test_the_frontmatter_title_wins_over_the_heading_which_is_no_scene():
    script = parse_markdown("---\ntitle: Given\n---\n# Heading\n## Intro\nRain.\n")
    assert script.title == "Given"
    assert [scene.heading for scene in script.scenes] == ["Intro"]


def test_it_splits_scenes_at_headings_without_timestamps():
    script = parse_markdown(
        "Notes before the scenes.\n\n## Verse 1: the city at night\nNeon.\n"
        "More neon.\n\n### Close-up\nA face.\n## Chorus\n"
    )
    assert [(s.heading, s.text) for s in script.scenes] == [
        ("Verse 1: the city at night", "Neon. More neon."),
        ("Close-up", "A face."),
        ("Chorus", ""),
    ]
    assert not script.timed()
    assert script.scenes[0].start is None and script.scenes[0].end is None
    assert script.notes == ()


def test_several_level_one_headings_are_scenes():
    script = parse_markdown("# Intro\nRain.\n# Outro\nSun.\n")
    assert script.title == ""
    assert [scene.heading for scene in script.scenes] == ["Intro", "Outro"]


@pytest.mark.parametrize(
    ("stamp", "seconds"),
    [
        ("0:12", 12.0),
        ("00:12", 12.0),
        ("1:02:03", 3723.0),
        ("[0:12]", 12.0),
        ("(0:12)", 12.0),
        ("0:12.5", 12.5),
        ("2:05", 125.0),
    ],
)
def test_it_reads_every_timestamp_form(stamp, seconds):
    heading = parse_markdown(f"## {stamp} Verse\nRain.\n").scenes[0]
    line = parse_text(f"{stamp} Verse\nRain.\n").scenes[0]
    for scene in (heading, line):
        assert (scene.heading, scene.text) == ("Verse", "Rain.")
        assert scene.start == seconds
        assert scene.end is None


@pytest.mark.parametrize(
    "stamp", ["0:12-0:24", "0:12 – 0:24", "0:12—0:24", "0:12 to 0:24", "[0:12-0:24]"]
)
def test_it_reads_timestamp_ranges_from_headings(stamp):
    script = parse_markdown(f"## {stamp} - Chorus\nDance.\n")
    scene = script.scenes[0]
    assert (scene.heading, scene.start, scene.end) == ("Chorus", 12.0, 24.0)
    assert script.timed()


def test_it_reads_a_timestamp_from_the_first_line_under_a_heading():
    script = parse_markdown("## Verse\n\n**0:12 – 0:24**\nRain.\n## Chorus\n0:30\n")
    verse, chorus = script.scenes
    assert (verse.start, verse.end, verse.text) == (12.0, 24.0, "Rain.")
    assert (chorus.start, chorus.text) == (30.0, "")


@pytest.mark.parametrize("heading", ["John 3:16", "0:123 frames", "10:30am call"])
def test_only_a_whole_opening_timestamp_is_a_time(heading):
    scene = parse_markdown(f"## {heading}\nRead.\n").scenes[0]
    assert (scene.heading, scene.start) == (heading, None)


def test_a_timestamp_earlier_than_the_previous_scene_is_dropped_with_a_note():
    script = parse_markdown(
        "## 0:45-0:50 Verse\n## 0:40.5-0:48 Chorus\n## 0:45 Again\n## 1:00 Outro\n"
    )
    assert [(s.start, s.end) for s in script.scenes] == [
        (45.0, 50.0),
        (None, None),
        (None, None),
        (60.0, None),
    ]
    assert script.notes == (
        "scene 2's timestamp 0:40.5 is before scene 1's 0:45: ignored",
        "scene 3's timestamp 0:45 is the same as scene 1's 0:45: ignored",
    )


def test_an_end_not_after_its_start_is_dropped_with_a_note():
    script = parse_text("0:12-0:12 Verse\n1:05 to 1:00 Chorus\n")
    assert [(s.start, s.end) for s in script.scenes] == [(12.0, None), (65.0, None)]
    assert script.notes == (
        "scene 1's end 0:12 is not after its start 0:12: ignored",
        "scene 2's end 1:00 is not after its start 1:05: ignored",
    )


@pytest.mark.parametrize("stamp", ["6:00:01", "7:00:00", "0:05-6:30:00"])
def test_it_rejects_times_past_six_hours(stamp):
    with pytest.raises(ScriptError, match=r"line 3: .*6-hour"):
        parse_markdown(f"## Intro\nRain.\n## {stamp} Late\n")


def test_it_rejects_seconds_past_59():
    with pytest.raises(ScriptError, match="line 2: 0:75 is not a time"):
        parse_text("0:00 Intro\n0:75 Verse\n")


def test_it_splits_plain_text_at_screenplay_sluglines():
    script = parse_text(
        "FADE IN:\n\nINT. KITCHEN - NIGHT\nMia cooks.\n\nShe hums.\n"
        "EXT. ROOFTOP – DAWN\nLeo smokes.\nINT./EXT. CAR - DAY\nThey drive.\n",
        title="Drive",
    )
    assert script.title == "Drive"
    assert [(s.heading, s.text) for s in script.scenes] == [
        ("INT. KITCHEN - NIGHT", "Mia cooks.\nShe hums."),
        ("EXT. ROOFTOP – DAWN", "Leo smokes."),
        ("INT./EXT. CAR - DAY", "They drive."),
    ]


def test_it_splits_plain_text_at_scene_numbers():
    script = parse_markdown(
        "Scene 1: the city\nRain.\nSCENE 2 - the river\nFog.\nscene 3\nSun.\n"
        "INTRO is a word, not a slugline.\n"
    )
    assert [(s.heading, s.text) for s in script.scenes] == [
        ("Scene 1: the city", "Rain."),
        ("SCENE 2 - the river", "Fog."),
        ("scene 3", "Sun. INTRO is a word, not a slugline."),
    ]


def test_it_splits_plain_text_at_timestamped_lines_after_a_preamble():
    script = parse_text("My song\n0:00 Intro\nRain falls.\n[0:12] Verse\nFog.\n")
    assert [(s.heading, s.text, s.start) for s in script.scenes] == [
        ("Intro", "Rain falls.", 0.0),
        ("Verse", "Fog.", 12.0),
    ]


def test_it_falls_back_to_one_scene_per_paragraph():
    script = parse_markdown("The city\nat night.\n\n\nThe river.\n\n---\n\nThe sun.\n")
    assert [(s.heading, s.text) for s in script.scenes] == [
        ("", "The city at night."),
        ("", "The river."),
        ("", "The sun."),
    ]


def test_it_keeps_the_first_scenes_and_notes_the_cap():
    script = parse_text("\n\n".join(f"Shot {i}." for i in range(MAX_SCENES + 20)))
    assert len(script.scenes) == MAX_SCENES
    assert script.scenes[-1].text == f"Shot {MAX_SCENES - 1}."
    assert script.notes == (
        f"the script has {MAX_SCENES + 20} scenes: kept the first {MAX_SCENES}",
    )


def test_it_notes_a_long_preamble_but_not_a_short_one():
    long = parse_markdown("word " * 60 + "\n## Intro\nRain.\n")
    short = parse_markdown("A few words.\n## Intro\nRain.\n")
    assert long.notes == ("the 60 words before the first scene are not in any scene",)
    assert short.notes == ()


def test_it_reports_bad_yaml_with_its_line_number():
    text = "---\ntitle: Night\nstyle: [neon\ncharacters: x\n---\n## Intro\n"
    with pytest.raises(ScriptError, match=r"^line 4: the frontmatter is not valid"):
        parse_markdown(text)


@pytest.mark.parametrize(
    ("frontmatter", "key", "line"),
    [
        ("title: 1999", "title", 2),
        ("style: [a, b]", "style", 2),
        ("title: ok\ncharacters: Mia", "characters", 3),
        ("characters:\n  - [Mia]", "characters", 2),
        ("characters:\n  - description: no name", "characters", 2),
        ("characters:\n  - name: Mia\n    description: [x]", "characters", 2),
    ],
)
def test_it_rejects_a_frontmatter_key_of_the_wrong_type(frontmatter, key, line):
    with pytest.raises(ScriptError, match=rf"^line {line}: frontmatter '{key}' must"):
        parse_markdown(f"---\n{frontmatter}\n---\n## Intro\n")


def test_it_rejects_frontmatter_that_is_not_a_mapping_or_is_never_closed():
    with pytest.raises(ScriptError, match="'key: value' lines"):
        parse_markdown("---\n- a list\n---\n## Intro\n")
    with pytest.raises(ScriptError, match="line 1: .*no closing '---'"):
        parse_markdown("---\ntitle: x\n## Intro\n")


@pytest.mark.parametrize(
    "text", ["", "  \n\n", "---\ntitle: Only\n---\n", "# Only a title\n", "<!-- -->"]
)
def test_it_rejects_a_script_without_scenes(text):
    with pytest.raises(ScriptError, match="the script has no scenes: start each"):
        parse_markdown(text)


def test_it_rejects_a_script_over_the_size_limit():
    with pytest.raises(ScriptError, match="over 2 MiB"):
        parse_markdown("## Intro\n" + "é" * (MAX_SCRIPT_BYTES // 2))
    with pytest.raises(ScriptError, match="over 2 MiB"):
        load_script(Path("big.md"), b"a" * (MAX_SCRIPT_BYTES + 1))


def test_it_strips_markdown_markup_and_html():
    script = parse_markdown(
        "## **Verse** _one_ `[0:12]`\n"
        "A *neon* [sign](https://example.com) and ![a cat](cat.png), __bold__,\n"
        "~~gone~~ `code`, <b>html</b> &amp; <https://x.org> and snake_case_name.\n"
        "An \\*escaped\\* star.\n"
        "> Quoted.<!-- a\ncomment -->\n"
    )
    scene = script.scenes[0]
    assert scene.heading == "Verse one [0:12]"
    assert scene.text == (
        "A neon sign and a cat, bold, gone code, html & https://x.org and"
        " snake_case_name. An *escaped* star. Quoted."
    )


def test_it_keeps_list_items_as_lines():
    scene = parse_markdown(
        "## Shots\nThree shots:\n* wide\n  and slow\n- **close**\n1. end\n"
    ).scenes[0]
    assert scene.text == "Three shots:\n- wide and slow\n- close\n1. end"


def test_it_finds_characters_mentioned_as_whole_words_in_any_case():
    script = parse_markdown(
        "---\ncharacters: [Mia, Leo, Dr. Ray]\n---\n"
        "## MIA alone\nRain.\n## Bridge\nLeo's car. Dr. Ray waves.\n"
        "## Outro\nMiami and Leopold.\n"
    )
    assert [scene.characters for scene in script.scenes] == [
        ("Mia",),
        ("Leo", "Dr. Ray"),
        (),
    ]


def test_it_notes_duplicate_characters_and_unknown_character_keys():
    script = parse_markdown(
        "---\ncharacters:\n  - name: Mia\n    age: 30\n  - mia\n---\n## Intro\n"
    )
    assert script.characters == ("Mia",)
    assert script.notes == (
        "unknown key 'age' of character 'Mia' ignored",
        "character 'mia' is listed twice: the second ignored",
    )


@pytest.mark.parametrize("suffix", [".md", ".markdown", ".txt", ".MD"])
def test_load_script_reads_text_files_by_suffix_with_or_without_a_bom(tmp_path, suffix):
    path = tmp_path / f"song{suffix}"
    path.write_bytes(b"\xef\xbb\xbf---\r\ntitle: Caf\xc3\xa9\r\n---\r\n## Intro\r\n")
    script = load_script(path)
    assert script.title == "Café"
    assert [scene.heading for scene in script.scenes] == ["Intro"]
    plain = load_script(Path(f"other{suffix}"), b"## Outro\nSun.\n")
    assert plain.scenes[0].text == "Sun."


def test_load_script_names_the_line_of_a_bad_encoding():
    data = b"## Intro\nRain.\n" + "Café\n".encode("latin-1")
    with pytest.raises(ScriptError, match="^line 3: the script is not UTF-8"):
        load_script(Path("song.md"), data)


def test_load_script_rejects_other_suffixes_naming_the_allowed_ones():
    allowed = r"\.md, \.markdown, \.txt or \.pdf file, not '\.docx'"
    with pytest.raises(ScriptError, match=allowed):
        load_script(Path("song.docx"), b"## Intro\n")


def test_the_hand_made_pdf_is_well_formed():
    reader = PdfReader(io.BytesIO(make_pdf([["a"], ["b (c)"]])), strict=True)
    assert [page.extract_text().strip() for page in reader.pages] == ["a", "b (c)"]


def test_load_script_reads_scenes_and_timestamps_from_a_pdf(tmp_path):
    pdf = make_pdf(
        [
            ["Night Drive", "", "0:00 Intro", "Mia rides.", "[0:12-0:24] Verse 1"],
            ["Rain on the glass.", "0:30 - Chorus", "Everyone dances."],
        ]
    )
    path = tmp_path / "night-drive.pdf"
    path.write_bytes(pdf)
    script = load_script(path)
    assert script.title == "night-drive"
    assert [(s.heading, s.text, s.start, s.end) for s in script.scenes] == [
        ("Intro", "Mia rides.", 0.0, None),
        ("Verse 1", "Rain on the glass.", 12.0, 24.0),
        ("Chorus", "Everyone dances.", 30.0, None),
    ]
    assert script.style is None and script.notes == ()


def test_a_pdf_without_text_has_no_text_layer():
    with pytest.raises(ScriptError, match=r"^the PDF has no text layer \(a scan\?\)"):
        load_script(Path("scan.pdf"), make_pdf([[]]))


@pytest.mark.parametrize(
    "data", [b"", b"not a pdf at all", b"%PDF-1.4\n1 0 obj\n<< /Type", b"\x00" * 64]
)
def test_garbage_with_a_pdf_suffix_is_a_script_error(data):
    with pytest.raises(ScriptError, match="^the PDF cannot be read"):
        load_script(Path("script.pdf"), data)


def test_a_password_protected_pdf_is_a_script_error():
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    writer.encrypt("secret", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(ScriptError, match="password-protected"):
        read_pdf(out.getvalue())
