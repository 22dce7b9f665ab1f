"""Upload validation, exercised with real files made here (Pillow, numpy, wave and
the ffmpeg that imageio-ffmpeg ships), never with fixtures from elsewhere."""

from __future__ import annotations

import hashlib
import io
import struct
import subprocess
import wave
import zlib
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from workers.validation import (
    UploadRejected,
    ValidatedUpload,
    clean_display_name,
    validate_upload,
)

LIMITS = {
    "max_bytes": 50 * 1024 * 1024,
    "max_image_pixels": 50_000_000,
    "max_audio_seconds": 600.0,
}


def check(path: Path, name: str, **overrides) -> ValidatedUpload:
    kwargs = {**LIMITS, **overrides}
    return validate_upload(path, original_name=name, **kwargs)


def rejected(path: Path, name: str, **overrides) -> UploadRejected:
    with pytest.raises(UploadRejected) as info:
        check(path, name, **overrides)
    return info.value


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------- makers


def noise_image(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(7)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def write_wav(
    path: Path, seconds: float, *, rate: int = 22050, channels: int = 2
) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    frames = np.repeat(tone[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames.tobytes())
    return path


def ffmpeg(*args: str) -> None:
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    cmd = [exe, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def wav_input(path: Path) -> list[str]:
    return ["-f", "wav", "-protocol_whitelist", "file", "-i", str(path)]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def minimal_pdf() -> bytes:
    """A one-page PDF written by hand, with a correct cross-reference table."""
    stream = b"BT /F1 24 Tf 72 720 Td (Verse one) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, xref)
    )
    return out.getvalue()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Audio and video files made once for the module."""
    d = tmp_path_factory.mktemp("media")
    wav = write_wav(d / "tone.wav", 1.5, rate=22050, channels=2)
    cover = d / "cover.png"
    noise_image(32, 32).save(cover)
    files = {"wav": wav, "cover": cover}
    files["mp3"] = d / "tone.mp3"
    ffmpeg(
        *wav_input(wav),
        "-ar",
        "44100",
        "-ac",
        "1",
        "-c:a",
        "libmp3lame",
        str(files["mp3"]),
    )
    files["mp3_cover"] = d / "with_cover.mp3"
    ffmpeg(
        *wav_input(wav),
        *["-f", "png_pipe", "-protocol_whitelist", "file", "-i", str(cover)],
        *["-map", "0:a", "-map", "1:v", "-c:a", "libmp3lame", "-c:v", "png"],
        *[
            "-disposition:v",
            "attached_pic",
            "-id3v2_version",
            "3",
            str(files["mp3_cover"]),
        ],
    )
    for key, codec in [
        ("flac", ["-c:a", "flac"]),
        ("ogg", ["-c:a", "libvorbis"]),
        ("opus", ["-c:a", "libopus", "-ar", "48000"]),
        ("m4a", ["-c:a", "aac"]),
        ("aac", ["-c:a", "aac", "-f", "adts"]),
    ]:
        files[key] = d / f"tone.{key}"
        ffmpeg(*wav_input(wav), *codec, str(files[key]))
    files["two_tracks"] = d / "two_tracks.m4a"
    ffmpeg(
        *wav_input(wav),
        "-map",
        "0:a",
        "-map",
        "0:a",
        "-c:a",
        "aac",
        str(files["two_tracks"]),
    )
    files["video"] = d / "clip.mp4"
    ffmpeg(
        *["-f", "lavfi", "-i", "testsrc=size=64x64:rate=10:duration=1"],
        *["-f", "lavfi", "-i", "sine=frequency=440:duration=1"],
        *["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"],
        str(files["video"]),
    )
    return files


# --------------------------------------------------------------------- images


EXIF = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00"


@pytest.mark.parametrize(
    ("fmt", "options", "name", "mime", "extension"),
    [
        ("PNG", {}, "Portrait.png", "image/png", ".png"),
        ("JPEG", {}, "portrait.JPEG", "image/jpeg", ".jpg"),
        ("WEBP", {}, "portrait.webp", "image/webp", ".webp"),  # VP8 chunk
        ("WEBP", {"lossless": True}, "lossless.webp", "image/webp", ".webp"),  # VP8L
        ("WEBP", {"exif": EXIF}, "extended.webp", "image/webp", ".webp"),  # VP8X
    ],
)
def test_it_accepts_a_real_png_jpeg_and_webp_with_metadata_and_sha256(
    tmp_path: Path, fmt: str, options: dict, name: str, mime: str, extension: str
) -> None:
    path = tmp_path / "upload.bin"
    noise_image(120, 80).save(path, format=fmt, **options)

    result = check(path, name, expected_kind="image")

    assert result.kind == "image"
    assert result.mime == mime
    assert result.extension == extension
    assert result.size == path.stat().st_size
    assert result.sha256 == sha256_of(path)
    assert result.metadata["width"] == 120
    assert result.metadata["height"] == 80
    assert result.metadata["format"] == fmt


def test_it_decides_the_image_type_by_content_not_by_extension(tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    noise_image(16, 16).save(path, format="JPEG")

    result = check(path, "really-a-jpeg.png")

    assert (result.mime, result.extension) == ("image/jpeg", ".jpg")


def test_it_rejects_an_html_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    path.write_text(
        "<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"
    )

    exc = rejected(path, "cat.png")

    assert exc.code == "markup"
    assert "cat.png" in str(exc)
    assert "web page" in str(exc)


def test_it_rejects_an_html_polyglot_png(tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<script>alert(document.cookie)</script>")
    noise_image(32, 32).save(path, format="PNG", pnginfo=info)
    data = path.read_bytes()
    assert 0 <= data.find(b"<script>") < 1024  # the payload sits in the sniffed window
    with Image.open(path) as im:  # and the file is otherwise a valid PNG
        im.load()

    exc = rejected(path, "innocent.png")

    assert exc.code == "markup"
    assert "innocent.png" in str(exc)


def test_it_accepts_a_png_whose_text_chunk_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "shot on a sunny day, 5 < 6")
    noise_image(32, 32).save(path, format="PNG", pnginfo=info)

    assert check(path, "sunny.png").kind == "image"


def test_it_rejects_an_image_over_the_pixel_limit(tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    Image.new("L", (2000, 1000)).save(path, format="PNG")  # compresses to a few KB

    exc = rejected(path, "wide.png", max_image_pixels=1_000_000)

    assert exc.code == "too_many_pixels"
    assert "2000×1000 pixels" in str(exc)
    assert "1,000,000" in str(exc)


def test_it_rejects_a_crafted_20000_by_20000_png_without_decoding_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the header claims the size (the IDAT is tiny): the limit must be
    # enforced from the header before Pillow is even asked to open the file.
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )
    path = tmp_path / "upload.bin"
    path.write_bytes(data)

    def no_pillow(*args: object, **kwargs: object) -> None:
        raise AssertionError("Pillow was asked to open an over-limit image")

    monkeypatch.setattr(Image, "open", no_pillow)
    exc = rejected(path, "bomb.png")

    assert exc.code == "too_many_pixels"
    assert "20000×20000 pixels" in str(exc)


def test_it_rejects_a_truncated_jpeg(tmp_path: Path) -> None:
    full = io.BytesIO()
    noise_image(256, 256).save(full, format="JPEG", quality=90)
    path = tmp_path / "upload.bin"
    path.write_bytes(full.getvalue()[: len(full.getvalue()) * 6 // 10])

    exc = rejected(path, "half.jpg")

    assert exc.code == "damaged"
    assert "half.jpg" in str(exc)


def test_it_rejects_a_gif_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    noise_image(8, 8).save(path, format="GIF")

    exc = rejected(path, "anim.gif")

    assert exc.code == "not_allowed"
    assert "GIF image" in str(exc)


# --------------------------------------------------------------------- audio


def test_it_accepts_wav_and_mp3_with_duration_sample_rate_channels(
    media: dict[str, Path],
) -> None:
    wav = check(media["wav"], "take 1.wav", expected_kind="audio")
    mp3 = check(media["mp3"], "take 1.mp3", expected_kind="audio")

    assert (wav.kind, wav.mime, wav.extension) == ("audio", "audio/wav", ".wav")
    assert wav.metadata["duration"] == pytest.approx(1.5, abs=0.01)
    assert wav.metadata["sample_rate"] == 22050
    assert wav.metadata["channels"] == 2
    assert wav.metadata["codec"] == "pcm_s16le"
    assert wav.metadata["format"] == "wav"
    assert wav.sha256 == sha256_of(media["wav"])

    assert (mp3.kind, mp3.mime, mp3.extension) == ("audio", "audio/mpeg", ".mp3")
    assert mp3.metadata["duration"] == pytest.approx(1.5, abs=0.1)
    assert mp3.metadata["sample_rate"] == 44100
    assert mp3.metadata["channels"] == 1
    assert mp3.metadata["codec"].startswith("mp3")
    assert mp3.metadata["cover_art"] is False
    assert mp3.sha256 == sha256_of(media["mp3"])


@pytest.mark.parametrize(
    ("key", "mime", "extension", "codec"),
    [
        ("flac", "audio/flac", ".flac", "flac"),
        ("ogg", "audio/ogg", ".ogg", "vorbis"),
        ("opus", "audio/ogg", ".opus", "opus"),
        ("m4a", "audio/mp4", ".m4a", "aac"),
        ("aac", "audio/aac", ".aac", "aac"),
    ],
)
def test_it_accepts_flac_ogg_opus_m4a_and_aac(
    media: dict[str, Path], key: str, mime: str, extension: str, codec: str
) -> None:
    result = check(media[key], f"song.{key}")

    assert (result.kind, result.mime, result.extension) == ("audio", mime, extension)
    assert result.metadata["codec"] == codec
    assert result.metadata["duration"] == pytest.approx(1.5, abs=0.1)


def test_it_accepts_an_mp3_with_cover_art(media: dict[str, Path]) -> None:
    result = check(media["mp3_cover"], "album track.mp3", expected_kind="audio")

    assert result.mime == "audio/mpeg"
    assert result.metadata["cover_art"] is True
    assert result.metadata["duration"] == pytest.approx(1.5, abs=0.1)


@pytest.mark.parametrize("name", ["song.m4a", "clip.mp4"])
def test_it_rejects_a_video_uploaded_as_audio(
    media: dict[str, Path], name: str
) -> None:
    exc = rejected(media["video"], name, expected_kind="audio")

    assert exc.code == "has_video"
    assert name in str(exc)
    assert "video" in str(exc)


def test_it_rejects_audio_with_more_than_one_audio_stream(
    media: dict[str, Path],
) -> None:
    exc = rejected(media["two_tracks"], "stems.m4a")

    assert exc.code == "audio_streams"
    assert "2 audio streams" in str(exc)


def test_it_rejects_audio_over_the_duration_limit(media: dict[str, Path]) -> None:
    exc = rejected(media["wav"], "long.wav", max_audio_seconds=1.0)

    assert exc.code == "too_long"
    assert "long.wav" in str(exc)


def test_it_rejects_a_text_file_named_mp3(tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    path.write_text("Verse 1\nWe ride the beat tonight\n")

    exc = rejected(path, "song.mp3")

    assert exc.code == "kind_mismatch"
    assert "named .mp3 but contains text" in str(exc)


def test_it_rejects_noise_behind_an_mp3_frame_header_as_not_audio(
    tmp_path: Path,
) -> None:
    # One valid MPEG Layer III frame header, then noise with no further frame
    # syncs: it sniffs as MP3, and only the probe can tell it is not audio.
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 255, 4000, dtype=np.uint8).tobytes()
    path = tmp_path / "upload.bin"
    path.write_bytes(b"\xff\xfb\x90\x00" + noise.replace(b"\xff", b"\x00"))

    exc = rejected(path, "broken.mp3")

    assert exc.code in {"not_audio", "no_duration"}
    assert "broken.mp3" in str(exc)


# --------------------------------------------------------------------- documents


def test_it_accepts_markdown_and_pdf(tmp_path: Path) -> None:
    md = tmp_path / "script.bin"
    md.write_text("# Scene 1\n\nLa caméra glisse — *slowly*.\n", encoding="utf-8")
    pdf = tmp_path / "lyrics.bin"
    pdf.write_bytes(minimal_pdf())

    text = check(md, "script.md", expected_kind="document")
    doc = check(pdf, "lyrics.pdf", expected_kind="document")

    assert (text.kind, text.mime, text.extension) == (
        "document",
        "text/markdown",
        ".md",
    )
    assert text.metadata["encoding"] == "utf-8"
    assert text.metadata["characters"] == len(md.read_text(encoding="utf-8"))
    assert text.metadata["lines"] == 3
    assert text.sha256 == sha256_of(md)
    assert (doc.kind, doc.mime, doc.extension) == (
        "document",
        "application/pdf",
        ".pdf",
    )
    assert doc.metadata["pages"] == 1
    assert doc.metadata["version"] == "1.4"
    assert doc.sha256 == sha256_of(pdf)


def test_it_calls_a_txt_upload_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(b"\xef\xbb\xbfplain words\n")

    result = check(path, "notes.txt")

    assert (result.mime, result.extension) == ("text/plain", ".txt")
    assert result.metadata["bom"] is True
    assert result.metadata["characters"] == len("plain words\n")


@pytest.mark.parametrize(
    "opening", ["BMX finals, take two", "MZ is my stage name", "FLV"]
)
def test_it_reads_text_that_happens_to_start_like_a_binary_signature(
    tmp_path: Path, opening: str
) -> None:
    path = tmp_path / "upload.bin"
    path.write_text(f"{opening}\nsecond line\n", encoding="utf-8")

    assert check(path, "script.txt").mime == "text/plain"


@pytest.mark.parametrize(
    "content",
    [
        b"\xef\xbb\xbf  \n<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
        b"\n\n  <HTML><body>hi</body></HTML>",
        b"<?xml version='1.0'?><svg/>",
    ],
)
def test_it_rejects_a_text_document_that_is_really_markup(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(content)

    exc = rejected(path, "script.md")

    assert exc.code == "markup"
    assert "script.md" in str(exc)


def test_it_rejects_text_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes("Café au lait, s'il vous plaît\n".encode("latin-1"))

    exc = rejected(path, "menu.txt")

    assert exc.code == "encoding"
    assert "UTF-8" in str(exc)


def test_it_rejects_a_text_document_with_control_characters(tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(b"title\n" * 10 + b"\x1b[31mred\x1b[0m\n")

    exc = rejected(path, "script.txt")

    assert exc.code == "not_allowed"


def test_it_rejects_a_truncated_pdf(tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(minimal_pdf()[:200])

    exc = rejected(path, "cut.pdf")

    assert exc.code == "damaged"


# --------------------------------------------------------------------- other types


@pytest.mark.parametrize(
    ("content", "looks_like"),
    [
        (b"PK\x03\x04" + b"\x00" * 60, "ZIP archive"),
        (b"MZ\x90\x00" + b"\x00" * 60, "Windows executable"),
        (b"\x7fELF\x02\x01\x01" + b"\x00" * 60, "Linux executable"),
    ],
)
def test_it_rejects_disallowed_types_naming_what_they_look_like(
    tmp_path: Path, content: bytes, looks_like: str
) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(content)

    exc = rejected(path, "photo.png")

    assert exc.code == "not_allowed"
    assert looks_like in str(exc)
    assert "photo.png" in str(exc)


def test_it_rejects_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(b"")

    exc = rejected(path, "nothing.png")

    assert exc.code == "empty"
    assert "nothing.png" in str(exc)


def test_it_rejects_an_oversize_file_before_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(b"x" * 2048)

    exc = rejected(path, "big.txt", max_bytes=1024)

    assert exc.code == "too_big"
    assert "big.txt" in str(exc)


@pytest.mark.parametrize(
    ("expected_kind", "maker", "name"),
    [("audio", "png", "photo.png"), ("image", "wav", "take.wav")],
)
def test_it_rejects_expected_kind_mismatch(
    tmp_path: Path, media: dict[str, Path], expected_kind: str, maker: str, name: str
) -> None:
    if maker == "png":
        path = tmp_path / "upload.bin"
        noise_image(16, 16).save(path, format="PNG")
    else:
        path = media["wav"]

    exc = rejected(path, name, expected_kind=expected_kind)

    assert exc.code == "kind_mismatch"
    assert "expected" in str(exc)


def test_it_refuses_an_unknown_expected_kind_as_a_programming_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "upload.bin"
    path.write_text("hello\n")

    with pytest.raises(ValueError) as info:
        check(path, "a.txt", expected_kind="video")
    assert not isinstance(info.value, UploadRejected)


# --------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd.png",
        "..\\x.png",
        "a/b.png",
        "..",
        "",
        "   ",
        "evil\x00.png",
        "line\nbreak.png",
        "invoice\u202egnp.exe",
        "x" * 252 + ".png",
    ],
)
def test_it_rejects_a_file_with_a_path_in_its_name(tmp_path: Path, name: str) -> None:
    path = tmp_path / "upload.bin"
    noise_image(16, 16).save(path, format="PNG")

    with pytest.raises(UploadRejected) as direct:
        clean_display_name(name)
    exc = rejected(path, name)

    assert direct.value.code == exc.code == "name"


def test_it_keeps_an_ordinary_display_name(tmp_path: Path) -> None:
    assert (
        clean_display_name("  Summer Song (final) v2.MP3 ")
        == "Summer Song (final) v2.MP3"
    )
    assert clean_display_name("Cafe\u0301.png") == "Caf\u00e9.png"  # NFC
    assert clean_display_name("x" * 251 + ".png") == "x" * 251 + ".png"


def test_it_rejects_an_animated_image(tmp_path):
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
    path = tmp_path / "loop.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)

    error = rejected(path, "loop.webp")
    assert error.code == "animated"
    assert "animated" in str(error)
