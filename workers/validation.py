"""Upload validation: decide what an uploaded file is from its bytes, never its name.

Framework-free on purpose (no Django import): the upload view, the DRF API and the
``render`` command all call :func:`validate_upload` on a local file path and pass
the limits from settings (``STUDIO_MAX_UPLOAD_BYTES``, ``STUDIO_MAX_IMAGE_PIXELS``,
``STUDIO_MAX_AUDIO_SECONDS``).

What is allowed:

* images: PNG, JPEG, WebP (decoded in full by Pillow, pixel count capped before
  any decoding);
* audio: WAV, MP3, FLAC, Ogg Vorbis / Opus, M4A (AAC/ALAC in ISO-BMFF), raw AAC
  (ADTS); probed with PyAV through ``workers.probe``: exactly one audio stream,
  no video except cover art, a positive duration under the limit;
* documents: PDF, and UTF-8 text (Markdown or plain) without NUL or control
  characters.

Everything else is rejected with :class:`UploadRejected`, whose ``str()`` is one
sentence for the user naming the file, and whose ``code`` is machine-readable.

The file name the user gave is only ever shown (:func:`clean_display_name`); the
stored file gets a server-made name and the extension from
``ValidatedUpload.extension``. Checking the first KiB for markup is a second
line of defence: serve uploads with their detected ``mime``,
``X-Content-Type-Options: nosniff`` and, for documents,
``Content-Disposition: attachment``.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import stat
import struct
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image

from workers.probe import ProbeError, probe_media

__all__ = [
    "KINDS",
    "UploadRejected",
    "ValidatedUpload",
    "clean_display_name",
    "validate_upload",
]

KINDS = ("image", "audio", "document")

MAX_NAME_CHARS = 255
# How much of the file the browser-sniffing guard looks at.
MARKUP_WINDOW = 1024
# Enough for every signature below (ftyp box, first Ogg page, text heuristics).
_HEAD_BYTES = 64 * 1024
_CHUNK = 1024 * 1024

_MARKUP = (b"<html", b"<script", b"<!doctype", b"<body", b"<iframe", b"<svg", b"<?xml")

_ALLOWED_BY_KIND = {
    "image": "a PNG, JPEG or WebP image",
    "audio": "WAV, MP3, FLAC, Ogg, Opus, M4A or AAC audio",
    "document": "a PDF, Markdown or plain-text (UTF-8) document",
}

# What a claimed extension says the user meant to upload. Only used to catch
# mix-ups ("named .mp3 but contains text"); the type always comes from content.
_CLAIMED_KIND = {
    **dict.fromkeys(
        (".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".gif", ".bmp", ".tif")
        + (".tiff", ".heic", ".heif", ".avif"),
        "image",
    ),
    **dict.fromkeys(
        (".mp3", ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac")
        + (".aif", ".aiff", ".wma"),
        "audio",
    ),
    **dict.fromkeys((".md", ".markdown", ".txt", ".text", ".pdf"), "document"),
}

# Decoders PyAV may report for each container we accept.
_AUDIO_CODECS = {
    "wav": ("pcm_", "adpcm_"),
    "mp3": ("mp3",),  # "mp3" or "mp3float"
    "flac": ("flac",),
    "ogg": ("vorbis", "opus"),
    "m4a": ("aac", "alac"),
    "aac": ("aac",),
}
# PyAV's format_name for each container.
_AUDIO_FORMATS = {
    "wav": ("wav",),
    "mp3": ("mp3",),
    "flac": ("flac",),
    "ogg": ("ogg",),
    "m4a": ("mov,mp4,m4a,3gp,3g2,mj2",),
    "aac": ("aac",),
}

# ISO-BMFF major brands that audio-only MP4 files carry. Generic brands (isom,
# mp42 …) are also used by video, which the probe then rules out.
_MP4_AUDIO_BRANDS = {
    b"M4A ",
    b"M4B ",
    b"mp41",
    b"mp42",
    b"isom",
    b"iso2",
    b"iso4",
    b"iso5",
    b"iso6",
    b"dash",
    b"3gp4",
    b"3gp5",
    b"3gp6",
    b"3g2a",
}
_MP4_IMAGE_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif"}

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class UploadRejected(ValueError):
    """The upload is not acceptable; ``str(exc)`` is the message for the user.

    ``code`` is a stable, machine-readable reason for APIs and tests: ``name``,
    ``empty``, ``too_big``, ``not_allowed``, ``markup``, ``kind_mismatch``,
    ``too_many_pixels``, ``damaged``, ``not_audio``, ``has_video``,
    ``audio_streams``, ``no_duration``, ``too_long``, ``encoding``,
    ``changed``.
    """

    def __init__(self, message: str, *, code: str = "rejected") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ValidatedUpload:
    kind: str  # "image" | "audio" | "document"
    mime: str  # "image/png", "audio/mpeg", "text/markdown", "application/pdf" …
    extension: str  # the server's extension for the detected type, e.g. ".png"
    sha256: str
    size: int
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Detected:
    kind: str
    fmt: str  # internal name: png, jpeg, webp, wav, mp3, flac, ogg, m4a, aac, pdf, text
    mime: str
    extension: str
    label: str  # what to call it in messages


class _NotAllowed(Exception):
    def __init__(self, looks_like: str | None, code: str = "not_allowed") -> None:
        super().__init__(looks_like)
        self.looks_like = looks_like
        self.code = code


# --------------------------------------------------------------------------- names


def _shown(name: str, limit: int = 60) -> str:
    """The user's name made safe to echo back in a message."""
    safe = "".join(
        ch
        if unicodedata.category(ch) not in ("Cc", "Cf")
        else "\N{REPLACEMENT CHARACTER}"
        for ch in name
    )
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"


def clean_display_name(original_name: str) -> str:
    """Return the user's file name for display, or raise :class:`UploadRejected`.

    Rejects empty names, names over 255 characters, names with a path (``/``,
    ``\\``, ``.`` or ``..``), and names with control or bidirectional-override
    characters (which can make ``gnp.exe`` display as ``exe.png``). The result is
    NFC-normalised with surrounding whitespace removed.
    """
    if not isinstance(original_name, str):
        raise TypeError("original_name must be a str")
    name = unicodedata.normalize("NFC", original_name).strip()
    if not name:
        raise UploadRejected("The uploaded file has no name.", code="name")
    if len(name) > MAX_NAME_CHARS:
        raise UploadRejected(
            f"The file name {_shown(name)!r} is too long: file names may be at most "
            f"{MAX_NAME_CHARS} characters.",
            code="name",
        )
    if any(unicodedata.category(ch) == "Cc" or ch in _BIDI_CONTROLS for ch in name):
        raise UploadRejected(
            f"The file name {_shown(name)!r} is not allowed: file names may not "
            "contain control characters.",
            code="name",
        )
    if "/" in name or "\\" in name or name in (".", ".."):
        raise UploadRejected(
            f"The file name {_shown(name)!r} is not allowed: file names may not "
            "contain a path.",
            code="name",
        )
    return name


def _claimed_extension(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


# --------------------------------------------------------------------------- sniffing


def _is_mpeg_audio_layer3(h: bytes) -> bool:
    """An MPEG-1/2/2.5 Layer III frame header (what MP3 files are made of)."""
    if len(h) < 4 or h[0] != 0xFF or (h[1] & 0xE0) != 0xE0:
        return False
    version = (h[1] >> 3) & 0b11
    layer = (h[1] >> 1) & 0b11
    bitrate = h[2] >> 4
    sample_rate = (h[2] >> 2) & 0b11
    return (
        version != 0b01 and layer == 0b01 and bitrate != 0b1111 and sample_rate != 0b11
    )


def _is_adts(h: bytes) -> bool:
    """An ADTS header (raw AAC): 12-bit sync, layer 00, a valid rate index."""
    return (
        len(h) >= 7
        and h[0] == 0xFF
        and (h[1] & 0xF6) == 0xF0
        and ((h[2] >> 2) & 0x0F) < 13
    )


def _after_id3(f: BinaryIO, head: bytes) -> bytes:
    """The first bytes after an ID3v2 tag (and any zero padding after it)."""
    size = 0
    for b in head[6:10]:
        if b & 0x80:  # sizes are "syncsafe": 7 bits a byte
            return b""
        size = (size << 7) | b
    offset = 10 + size + (10 if head[5] & 0x10 else 0)
    f.seek(offset)
    data = f.read(64 * 1024)
    return data.lstrip(b"\x00")[:16]


def _looks_like(head: bytes) -> str | None:
    """Name a known type that is not allowed, for the message."""
    h4 = head[:4]
    if h4 in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "a ZIP archive (or an Office document or app package)"
    if head[:2] == b"MZ":
        return "a Windows executable"
    if h4 == b"\x7fELF":
        return "a Linux executable"
    if h4 in (
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
        b"\xca\xfe\xba\xbe",
    ):
        return "an executable"
    if h4 == b"\x00asm":
        return "a WebAssembly program"
    if head[:2] == b"\x1f\x8b":
        return "a gzip archive"
    if head[:6] == b"7z\xbc\xaf\x27\x1c":
        return "a 7-Zip archive"
    if head[:4] == b"Rar!":
        return "a RAR archive"
    if head[:3] == b"BZh":
        return "a bzip2 archive"
    if head[:6] == b"\xfd7zXZ\x00":
        return "an xz archive"
    if head[257:262] == b"ustar":
        return "a tar archive"
    if head[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        return "an old-style Office document"
    if head[:16] == b"SQLite format 3\x00":
        return "a database file"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "a GIF image"
    if head[:2] == b"BM":
        return "a BMP image"
    if h4 in (b"II*\x00", b"MM\x00*"):
        return "a TIFF image"
    if h4 == b"\x00\x00\x01\x00":
        return "an icon file"
    if h4 == b"\x1a\x45\xdf\xa3":
        return "a Matroska/WebM video"
    if h4 == b"RIFF" and head[8:12] == b"AVI ":
        return "an AVI video"
    if head[:3] == b"FLV":
        return "a Flash video"
    if h4 == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF audio"
    if h4 == b"MThd":
        return "a MIDI file"
    if head[:4] == b"0&\xb2u":
        return "Windows Media audio or video"
    return None


def _sniff(f: BinaryIO, head: bytes) -> _Detected:
    """Classify by magic bytes; raise _NotAllowed for anything off the list."""
    if head.startswith(_PNG_MAGIC):
        return _Detected("image", "png", "image/png", ".png", "a PNG image")
    if head[:3] == b"\xff\xd8\xff":
        return _Detected("image", "jpeg", "image/jpeg", ".jpg", "a JPEG image")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _Detected("image", "webp", "image/webp", ".webp", "a WebP image")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return _Detected("audio", "wav", "audio/wav", ".wav", "WAV audio")
    if head[:4] == b"fLaC":
        return _Detected("audio", "flac", "audio/flac", ".flac", "FLAC audio")
    if head[:3] == b"ID3":
        after = _after_id3(f, head)
        if after[:4] == b"fLaC":
            return _Detected("audio", "flac", "audio/flac", ".flac", "FLAC audio")
        if _is_mpeg_audio_layer3(after):
            return _Detected("audio", "mp3", "audio/mpeg", ".mp3", "MP3 audio")
        if _is_adts(after):
            return _Detected("audio", "aac", "audio/aac", ".aac", "AAC audio")
        raise _NotAllowed("a tagged file with no MP3 audio after its tag")
    if _is_mpeg_audio_layer3(head):
        return _Detected("audio", "mp3", "audio/mpeg", ".mp3", "MP3 audio")
    if _is_adts(head):
        return _Detected("audio", "aac", "audio/aac", ".aac", "AAC audio")
    if head[:4] == b"OggS" and len(head) >= 27:
        first_packet = head[27 + head[26] : 27 + head[26] + 8]
        if first_packet.startswith(b"\x01vorbis"):
            return _Detected("audio", "ogg", "audio/ogg", ".ogg", "Ogg Vorbis audio")
        if first_packet.startswith(b"OpusHead"):
            return _Detected("audio", "ogg", "audio/ogg", ".opus", "Opus audio")
        raise _NotAllowed("an Ogg file that is not Vorbis or Opus audio")
    if head[4:8] == b"ftyp" and head[8:12] in _MP4_AUDIO_BRANDS:
        # Audio-only is settled by the probe: these brands are shared with video.
        return _Detected("audio", "m4a", "audio/mp4", ".m4a", "M4A audio")
    if head.startswith(b"%PDF-"):
        return _Detected("document", "pdf", "application/pdf", ".pdf", "a PDF document")
    return _sniff_other(head)


def _sniff_other(head: bytes) -> _Detected:
    if head[4:8] == b"ftyp":
        if head[8:12] in _MP4_IMAGE_BRANDS:
            raise _NotAllowed("a HEIC/AVIF image")
        raise _NotAllowed("a video (MP4/QuickTime)")
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise _NotAllowed("UTF-16 text (save it as UTF-8)", code="encoding")
    # Text first: some signatures below ("BM", "MZ", "FLV") are also how an
    # ordinary sentence can start, while the real formats have binary bytes
    # right after them and so never decode as clean text.
    text = _clean_text(head)
    if text is not None:
        start = text.lstrip().encode("utf-8", "replace")[:16].lower()
        if start.startswith((b"<svg", b"<?xml")):
            raise _NotAllowed(
                "SVG/XML markup, which browsers run like a web page", "markup"
            )
        if start.startswith(_MARKUP):
            raise _NotAllowed("a web page (HTML)", code="markup")
        return _Detected("document", "text", "text/plain", ".txt", "text")
    known = _looks_like(head)
    if known:
        raise _NotAllowed(known)
    if b"\x00" not in head and _looks_like_legacy_text(head):
        raise _NotAllowed(
            "text in an encoding other than UTF-8 (save it as UTF-8)", code="encoding"
        )
    raise _NotAllowed(None)


def _clean_text(head: bytes) -> str | None:
    """The head as UTF-8 text, or None if it is not clean text."""
    try:
        # final=False: the head may end in the middle of a character.
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    if "\x00" in text or _TEXT_CONTROL.search(text):
        return None
    return text


def _looks_like_legacy_text(head: bytes) -> bool:
    """Latin-1/Windows-1252 text rather than binary: few control bytes."""
    sample = head[:8192]
    controls = sum(1 for b in sample if b < 0x20 and b not in (9, 10, 12, 13))
    return controls <= len(sample) // 100


# --------------------------------------------------------------------------- images


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE}
_PILLOW_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
# What Pillow raises on malformed input (its own fuzzing harness catches these).
_PILLOW_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
)


def _jpeg_size(f: BinaryIO) -> tuple[int, int] | None:
    f.seek(2)
    while True:
        byte = f.read(1)
        if not byte:
            return None
        if byte != b"\xff":
            continue
        marker = f.read(1)
        while marker == b"\xff":  # fill bytes
            marker = f.read(1)
        if not marker:
            return None
        m = marker[0]
        if m in (0x00, 0x01, 0xD8) or 0xD0 <= m <= 0xD7:
            continue
        if m in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        raw = f.read(2)
        if len(raw) < 2:
            return None
        (length,) = struct.unpack(">H", raw)
        if length < 2:
            return None
        if m in _JPEG_SOF:
            body = f.read(5)
            if len(body) < 5:
                return None
            _precision, height, width = struct.unpack(">BHH", body)
            return width, height
        f.seek(length - 2, 1)


def _header_size(fmt: str, f: BinaryIO, head: bytes) -> tuple[int, int] | None:
    """Width and height as the file's header states them, without decoding."""
    if fmt == "png":
        if head[8:16] != b"\x00\x00\x00\x0dIHDR" or len(head) < 24:
            return None
        return struct.unpack(">II", head[16:24])
    if fmt == "webp":
        chunk = head[12:16]
        if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a" and len(head) >= 30:
            w, h = struct.unpack("<HH", head[26:30])
            return w & 0x3FFF, h & 0x3FFF
        if chunk == b"VP8L" and head[20:21] == b"\x2f" and len(head) >= 25:
            (bits,) = struct.unpack("<I", head[21:25])
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8X" and len(head) >= 30:
            w = int.from_bytes(head[24:27], "little") + 1
            h = int.from_bytes(head[27:30], "little") + 1
            return w, h
        return None
    return _jpeg_size(f)


def _validate_image(
    path: Path, f: BinaryIO, head: bytes, det: _Detected, name: str, max_pixels: int
) -> dict:
    damaged = UploadRejected(
        f"{name!r} could not be read as {det.label}: it is damaged or incomplete.",
        code="damaged",
    )
    size = _header_size(det.fmt, f, head)
    if size is None or size[0] <= 0 or size[1] <= 0:
        raise damaged
    width, height = size
    # Pillow's own bomb guard (warning-as-error below) is also in force, so the
    # effective limit is the smaller of the two; say that one in the message.
    limit = max_pixels
    if Image.MAX_IMAGE_PIXELS:
        limit = min(limit, int(Image.MAX_IMAGE_PIXELS))
    too_big = UploadRejected(
        f"{name!r} is too large: {width}×{height} pixels is over the limit of "
        f"{limit:,} pixels.",
        code="too_many_pixels",
    )
    if width * height > limit:
        raise too_big

    pillow_format = _PILLOW_FORMAT[det.fmt]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # formats=[…] stops Pillow from trying other decoders on these bytes.
            with Image.open(path, formats=[pillow_format]) as im:
                if im.format != pillow_format or im.size != (width, height):
                    raise damaged
                im.verify()
            with Image.open(path, formats=[pillow_format]) as im:
                im.load()
                metadata: dict[str, Any] = {
                    "width": im.width,
                    "height": im.height,
                    "format": pillow_format,
                    "mode": im.mode,
                    "frames": int(getattr(im, "n_frames", 1) or 1),
                }
    except UploadRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_big from None
    except _PILLOW_ERRORS as exc:
        raise damaged from exc
    if metadata["frames"] > 1:
        # Scenes are made from stills; an animation would render as its
        # first frame at best, so say so now rather than fail mid-render.
        raise UploadRejected(
            f"{name!r} is an animated image; upload a still photo.",
            code="animated",
        )
    return metadata


# --------------------------------------------------------------------------- audio


def _validate_audio(path: Path, det: _Detected, name: str, max_seconds: float) -> dict:
    try:
        info = probe_media(path)
    except ProbeError as exc:
        raise UploadRejected(
            f"{name!r} could not be read as audio: it is damaged or not a supported "
            "audio file.",
            code="not_audio",
        ) from exc
    if info.format_name not in _AUDIO_FORMATS[det.fmt]:
        raise UploadRejected(
            f"{name!r} could not be read as audio: it starts like {det.label} but "
            "its contents are something else.",
            code="not_audio",
        )
    if info.of_kind("video"):
        raise UploadRejected(
            f"{name!r} contains video; upload the audio only (cover art is fine).",
            code="has_video",
        )
    audio = info.of_kind("audio")
    if len(audio) != 1:
        raise UploadRejected(
            f"{name!r} has {len(audio)} audio streams; upload a file with exactly one.",
            code="audio_streams",
        )
    stream = audio[0]
    if not stream.codec.startswith(_AUDIO_CODECS[det.fmt]):
        raise UploadRejected(
            f"{name!r} could not be read as audio: {det.label} with the "
            f"{stream.codec!r} codec is not supported.",
            code="not_audio",
        )
    duration = stream.duration or info.duration
    if not duration or duration <= 0:
        raise UploadRejected(
            f"{name!r} could not be read as audio: it has no playable length.",
            code="no_duration",
        )
    if duration > max_seconds:
        raise UploadRejected(
            f"{name!r} is too long: {_clock(duration)} is over the limit of "
            f"{_clock(max_seconds)}.",
            code="too_long",
        )
    return {
        "duration": float(duration),
        "sample_rate": stream.sample_rate,
        "channels": stream.channels,
        "codec": stream.codec,
        "format": info.format_name,
        "cover_art": any(s.attached_picture for s in info.streams),
    }


def _clock(seconds: float) -> str:
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# --------------------------------------------------------------------------- documents


_PDF_PAGE = re.compile(rb"/Type\s*/Page[^A-Za-z0-9]")
_PDF_VERSION = re.compile(rb"%PDF-(\d\.\d)")


def _validate_pdf(f: BinaryIO, head: bytes, size: int, name: str) -> dict:
    version = _PDF_VERSION.match(head)
    f.seek(max(0, size - 1024))
    if not version or b"%%EOF" not in f.read():
        raise UploadRejected(
            f"{name!r} could not be read as a PDF document: it is damaged or "
            "incomplete.",
            code="damaged",
        )
    # No PDF parser in the dependencies: count page objects in the raw bytes.
    # Pages kept inside compressed object streams are invisible to this, so
    # ``pages`` is None rather than a wrong number when none are found.
    pages = 0
    tail = b""
    f.seek(0)
    while chunk := f.read(_CHUNK):
        buf = tail + chunk
        pages += sum(1 for m in _PDF_PAGE.finditer(buf) if m.end() > len(tail))
        tail = buf[-64:]
    return {"version": version.group(1).decode(), "pages": pages or None}


def _validate_text(f: BinaryIO, det: _Detected, name: str) -> dict:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    characters = lines = 0
    has_text = False
    last = ""
    f.seek(0)
    bom = f.read(3) == codecs.BOM_UTF8
    f.seek(0)
    try:
        while True:
            chunk = f.read(_CHUNK)
            text = decoder.decode(chunk, final=not chunk)
            if "\x00" in text or _TEXT_CONTROL.search(text):
                raise UploadRejected(
                    f"{name!r} is not a text document: it contains binary data or "
                    "control characters.",
                    code="not_allowed",
                )
            characters += len(text)
            lines += text.count("\n")
            has_text = has_text or bool(text.strip())
            last = text[-1:] or last
            if not chunk:
                break
    except UnicodeDecodeError:
        raise UploadRejected(
            f"{name!r} is not valid UTF-8 text; save it as UTF-8 and upload it again.",
            code="encoding",
        ) from None
    if not has_text:
        raise UploadRejected(f"{name!r} contains no text.", code="empty")
    if last != "\n":
        lines += 1
    return {"encoding": "utf-8", "bom": bom, "characters": characters, "lines": lines}


# --------------------------------------------------------------------------- main


def _human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _kind_phrase(kind: str) -> str:
    return {"image": "an image", "audio": "audio", "document": "a document"}[kind]


def _content_phrase(det: _Detected) -> str:
    return "text" if det.fmt == "text" else det.label


def validate_upload(
    path: Path,
    *,
    original_name: str,
    expected_kind: str | None = None,
    max_bytes: int,
    max_image_pixels: int,
    max_audio_seconds: float,
) -> ValidatedUpload:
    """Check an uploaded file by its content and describe it.

    ``path`` is the server's temporary copy; ``original_name`` is the name the
    user gave (only validated and shown, never used to pick the type or to
    store). ``expected_kind`` ("image", "audio", "document") narrows what is
    acceptable for a given slot. Raises :class:`UploadRejected` with a message
    for the user; raises ``ValueError``/``OSError`` only for caller errors
    (bad arguments, a missing path).
    """
    if expected_kind is not None and expected_kind not in KINDS:
        raise ValueError(f"expected_kind must be one of {KINDS} or None")
    if max_bytes <= 0 or max_image_pixels <= 0 or max_audio_seconds <= 0:
        raise ValueError("upload limits must be positive")
    name = clean_display_name(original_name)
    path = Path(path)

    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise UploadRejected(f"{name!r} is not a regular file.", code="not_allowed")
    if st.st_size == 0:
        raise UploadRejected(f"{name!r} is empty.", code="empty")
    if st.st_size > max_bytes:
        raise UploadRejected(
            f"{name!r} is too big: {_human_bytes(st.st_size)} is over the limit of "
            f"{_human_bytes(max_bytes)}.",
            code="too_big",
        )

    with path.open("rb") as f:
        head = f.read(_HEAD_BYTES)
        try:
            det = _sniff(f, head)
        except _NotAllowed as exc:
            allowed = (
                _ALLOWED_BY_KIND[expected_kind]
                if expected_kind
                else "an image (PNG, JPEG, WebP), audio (WAV, MP3, FLAC, Ogg, M4A) "
                "or a document (PDF, Markdown, text)"
            )
            what = exc.looks_like or "an unrecognised type"
            raise UploadRejected(
                f"{name!r} was rejected: it looks like {what}, which is not an "
                f"allowed file type; please upload {allowed}.",
                code=exc.code,
            ) from None

        claimed = _claimed_extension(name)
        claimed_kind = _CLAIMED_KIND.get(claimed)
        if claimed_kind and claimed_kind != det.kind:
            raise UploadRejected(
                f"{name!r} was rejected: it is named {claimed} but contains "
                f"{_content_phrase(det)}.",
                code="kind_mismatch",
            )
        if expected_kind and expected_kind != det.kind:
            raise UploadRejected(
                f"{name!r} was rejected: {_kind_phrase(expected_kind)} was expected "
                f"but it contains {_content_phrase(det)}.",
                code="kind_mismatch",
            )

        if det.kind in ("image", "audio"):
            window = head[:MARKUP_WINDOW].lower()
            if any(marker in window for marker in _MARKUP):
                raise UploadRejected(
                    f"{name!r} was rejected: it is {det.label} with web-page markup "
                    "hidden in it.",
                    code="markup",
                )

        if det.kind == "image":
            metadata = _validate_image(path, f, head, det, name, max_image_pixels)
        elif det.kind == "audio":
            metadata = _validate_audio(path, det, name, max_audio_seconds)
        elif det.fmt == "pdf":
            metadata = _validate_pdf(f, head, st.st_size, name)
        else:
            metadata = _validate_text(f, det, name)
            if claimed in (".md", ".markdown"):
                det = _Detected("document", "text", "text/markdown", ".md", "text")

        # Hash what is actually on disk now, and make sure it is what was checked.
        digest = hashlib.sha256()
        size = 0
        f.seek(0)
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    if size != st.st_size:
        raise UploadRejected(
            f"{name!r} changed while it was being checked; upload it again.",
            code="changed",
        )
    return ValidatedUpload(
        kind=det.kind,
        mime=det.mime,
        extension=det.extension,
        sha256=digest.hexdigest(),
        size=size,
        metadata=metadata,
    )
