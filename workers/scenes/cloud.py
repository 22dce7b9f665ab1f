"""The cloud engine: scenes made by a model behind a paid web API.

Four services, chosen by the registry's ``api`` param:

- ``openai-images`` (DALL-E 3): paints the scene's still from the prompt
  alone. DALL-E 3 takes no reference image, so the character's photo does not
  reach it: only what the prompt says carries into the still.
- ``gemini-image`` (Nano Banana Pro, ``gemini-3-pro-image-preview``): repaints
  the scene's photo as the prompt asks, in the aspect ratio nearest the
  video's.
- ``runway`` (Gen-3 Alpha Turbo) and ``kling``: animate the scene's photo
  into a clip. Both queue a task and are polled until it ends; the clip is
  then downloaded.

Decisions:
- Every request has a connect and a read timeout. 429, 5xx and connection
  failures are tried again (``tries`` in all, exponential backoff, the
  service's Retry-After honoured up to ``max_retry_after``); other 4xx fail
  at once with the service's own message. A POST that got no answer in time
  is not sent again: the service may be working on it, and a second one would
  be paid for twice.
- API calls never follow redirects: a redirect to another host would carry
  the key header with it. Downloads (signed CDN links) follow them and carry
  no key.
- The key never appears in an error or a log line: every message is scrubbed
  of it, since services echo what they were sent.
- What comes back is checked before the renderer sees it: an image is decoded
  and written again as PNG by Pillow; a clip must be a video FFmpeg reads and
  decodes. Downloads are capped in size and only http(s).
- Everything is written under a temporary name and renamed at the end; on
  any failure the engine removes what it wrote, so ``out_dir`` stays empty.
- A service's answer does not repeat for a seed as a local model's does; the
  seed still goes to the services that take one (Gemini, Runway), so a new
  seed asks for a different answer.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import hmac
import io
import json
import logging
import math
import os
import socket
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import av
import requests
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.Image import DecompressionBombError
from urllib3.exceptions import ReadTimeoutError

from workers.addresses import is_public_address
from workers.assembly.sources import probe_video

from . import ModelRef, SceneOutput, SceneRequest, SceneStopped

log = logging.getLogger(__name__)

MB = 1024 * 1024
PREVIEW_WIDTH = 320
# The photo sent to a service: big enough for its model, small enough for its
# request limits (Runway takes a data URI of a few MB).
PHOTO_SIDE = 1536
PHOTO_QUALITY = 92
# A clip's preview shows a frame half a second in: the first frame of an
# image-to-video clip is the photo itself.
PREVIEW_FRAME = 12
ERROR_DETAIL_CHARS = 300
CHUNK = 256 * 1024
# Redirects a download may follow, each checked like the first address.
MAX_REDIRECTS = 5

SERVICE_NAMES = {
    "openai-images": "OpenAI Images",
    "gemini-image": "Gemini",
    "runway": "Runway",
    "kling": "Kling",
}
SERVICE_TASKS = {
    "openai-images": "image",
    "gemini-image": "image",
    "runway": "video",
    "kling": "video",
}
# Where each service answers when the settings name no other base URL.
DEFAULT_BASE_URLS = {
    "openai-images": "https://api.openai.com/v1",
    "gemini-image": "https://generativelanguage.googleapis.com/v1beta",
    "runway": "https://api.dev.runwayml.com/v1",
    "kling": "https://api-singapore.klingai.com",
}
RUNWAY_VERSION = "2024-11-06"
DALLE3_SIZES = ("1024x1024", "1792x1024", "1024x1792")
GEMINI_RATIOS = (
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
)  # fmt: skip
# Services cut longer prompts off or refuse them.
PROMPT_LIMITS = {"openai-images": 4000, "runway": 1000, "kling": 2500}
RUNWAY_FINISHED = ("SUCCEEDED", "FAILED", "CANCELLED")


class CloudError(RuntimeError):
    """A cloud service did not make the scene; the message says which service
    and why, and never holds the key."""


def _ratio(text: str) -> float:
    left, _, right = text.replace("x", ":").partition(":")
    return int(left) / int(right)


def nearest(choices: tuple[str, ...] | list[str], width: int, height: int) -> str:
    """The choice ("16:9", "1792x1024" ...) whose aspect is nearest
    ``width`` x ``height``, measured on a log scale so 2:1 and 1:2 are as far
    from 1:1."""
    target = math.log(width / height)
    return min(choices, key=lambda c: abs(math.log(_ratio(c)) - target))


def clip_seconds(seconds: float, params: Mapping[str, Any]) -> int:
    """The clip length to ask for: the shortest of the service's ``durations``
    (default 5 and 10) that covers ``seconds``, at most ``max_seconds``; the
    longest allowed when none covers it (the renderer stretches the clip)."""
    most = float(params.get("max_seconds", 10))
    allowed = sorted(int(d) for d in params.get("durations", (5, 10)) if int(d) <= most)
    if not allowed:
        raise ValueError("the model's durations are all longer than its max_seconds")
    for duration in allowed:
        if duration >= seconds - 1e-6:
            return duration
    return allowed[-1]


def kling_token(access_key: str, secret_key: str, now: float | None = None) -> str:
    """The JWT (HS256) Kling takes as its bearer token: issued by the access
    key, valid for 30 minutes, and from 5 s ago for clocks a little behind."""
    moment = int(time.time() if now is None else now)

    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = part({"alg": "HS256", "typ": "JWT"})
    body = part({"iss": access_key, "exp": moment + 1800, "nbf": moment - 5})
    signing = f"{head}.{body}".encode()
    digest = hmac.new(secret_key.encode(), signing, hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return f"{head}.{body}.{signature}"


def _crop(photo: Image.Image, aspect: float, focus: tuple[float, float]) -> Image.Image:
    """``photo`` cropped to ``aspect`` around ``focus`` (fractions of its
    width and height), so the service frames the character as the video
    does."""
    width, height = photo.size
    if width / height > aspect:
        crop_w, crop_h = round(height * aspect), height
    else:
        crop_w, crop_h = width, round(width / aspect)
    left = min(max(round(focus[0] * width - crop_w / 2), 0), width - crop_w)
    top = min(max(round(focus[1] * height - crop_h / 2), 0), height - crop_h)
    return photo.crop((left, top, left + crop_w, top + crop_h))


def photo_jpeg(
    path: Path, *, aspect: float | None = None, focus: tuple[float, float] = (0.5, 0.5)
) -> bytes:
    """The scene's photo as a JPEG for a service: upright, RGB, optionally
    cropped to ``aspect``, at most ``PHOTO_SIDE`` pixels on its long side."""
    try:
        with Image.open(path) as opened:
            photo = ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ValueError(f"{path.name}: not an image that can be read") from exc
    if aspect is not None:
        photo = _crop(photo, aspect, focus)
    photo.thumbnail((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=PHOTO_QUALITY)
    return buffer.getvalue()


def _retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (a number or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_read_timeout(exc: requests.RequestException) -> bool:
    # requests raises ReadTimeout while waiting for the headers, but a
    # ConnectionError wrapping urllib3's ReadTimeoutError while reading a body.
    if isinstance(exc, requests.ReadTimeout):
        return True
    return any(isinstance(arg, ReadTimeoutError) for arg in exc.args)


def _service_message(body: bytes) -> str:
    """The service's own words from an error body: OpenAI and Gemini send
    ``{"error": {"message"}}``, Runway ``{"error": "..."}``, Kling
    ``{"code", "message"}``; anything else is shown as text, shortened."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:ERROR_DETAIL_CHARS] or "no message"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = str(error.get("message") or "").strip()
            code = error.get("code") or error.get("status")
            if message and code and str(code) not in message:
                return f"{message} ({code})"[:ERROR_DETAIL_CHARS]
            if message:
                return message[:ERROR_DETAIL_CHARS]
        elif isinstance(error, str) and error.strip():
            return error.strip()[:ERROR_DETAIL_CHARS]
        for key in ("message", "detail", "msg"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:ERROR_DETAIL_CHARS]
    return text[:ERROR_DETAIL_CHARS]


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a reply's list, ignoring anything else in it (a reply
    of another shape then says it holds no result)."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


class _Client:
    """One scene's conversation with one service: its requests with retries,
    its downloads, and the files it wrote, removed if the scene fails."""

    def __init__(
        self,
        engine: CloudEngine,
        request: SceneRequest,
        model: ModelRef,
        api: str,
        secrets: tuple[str, ...],
    ) -> None:
        self.engine = engine
        self.request = request
        self.label = f"{SERVICE_NAMES[api]} ({model.params.get('model', model.key)})"
        self.secrets = [s for s in secrets if s]
        self.session = requests.Session()
        self.written: list[Path] = []

    def keep_secret(self, secret: str) -> None:
        """Also keep ``secret`` (a token made from the key) out of messages."""
        self.secrets.append(secret)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[key]")
        return text

    def error(self, message: str) -> CloudError:
        return CloudError(self.scrub(f"{self.label}: {message}"))

    def pause(self, seconds: float) -> None:
        """Sleep, waking at once when the scene is stopped."""
        if self.request.stop.wait(max(0.0, seconds)):
            raise SceneStopped(f"scene {self.request.index} was stopped")

    def _delay(self, attempt: int, response: requests.Response | None) -> float:
        asked = (
            _retry_after(response.headers.get("Retry-After"))
            if response is not None
            else None
        )
        wanted = asked if asked is not None else self.engine.backoff * 2**attempt
        return min(wanted, self.engine.max_retry_after)

    def call(
        self,
        method: str,
        url: str,
        headers: Callable[[], dict[str, str]] | dict[str, str],
        body: dict[str, Any] | None = None,
    ) -> Any:
        """The JSON answer to one API request, tried again on 429, 5xx and
        connection failures; a CloudError for anything else."""
        engine = self.engine
        timeout = (engine.connect_timeout, engine.read_timeout)
        limit = engine.max_image_bytes * 4 // 3 + MB  # base64 of the largest image
        last = ""
        for attempt in range(engine.tries):
            if self.request.stop.is_set():
                raise SceneStopped(f"scene {self.request.index} was stopped")
            sent = headers() if callable(headers) else headers
            response: requests.Response | None = None
            try:
                with self.session.request(
                    method, url, headers={"Accept": "application/json", **sent},
                    json=body, timeout=timeout, stream=True, allow_redirects=False,
                ) as response:  # fmt: skip
                    data = self._read(response, limit)
            except requests.RequestException as exc:
                if _is_read_timeout(exc):
                    last = f"no answer within {engine.read_timeout:g} s"
                    if method != "GET":
                        raise self.error(last) from None
                elif isinstance(exc, requests.ConnectionError):
                    last = f"could not connect to {urlsplit(url).netloc}"
                elif isinstance(exc, requests.exceptions.ChunkedEncodingError):
                    # The service answered, then the answer broke off: a POST
                    # was taken, so only a status request is asked again.
                    last = "the reply was cut off"
                    if method != "GET":
                        raise self.error(last) from None
                else:
                    raise self.error(
                        f"the request failed ({type(exc).__name__})"
                    ) from None
                response = None
            else:
                status = response.status_code
                if 200 <= status < 300:
                    try:
                        return json.loads(data)
                    except ValueError:
                        raise self.error(
                            f"the reply to {method} {urlsplit(url).path} is not JSON"
                        ) from None
                last = f"HTTP {status}: {_service_message(data)}"
                if status != 429 and status < 500:
                    raise self.error(last)
            if attempt + 1 < engine.tries:
                delay = self._delay(attempt, response)
                log.warning(
                    "%s", self.scrub(f"{self.label}: {last}; trying again in "
                    f"{delay:.1f} s ({attempt + 2} of {engine.tries})"),
                )  # fmt: skip
                self.pause(delay)
        raise self.error(f"{last} (gave up after {engine.tries} tries)")

    def _read(self, response: requests.Response, limit: int) -> bytes:
        if 300 <= response.status_code < 400:
            return f"an unexpected redirect ({response.status_code})".encode()
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
            if size > limit:
                raise self.error(f"the reply is larger than {limit // MB} MB")
            chunks.append(chunk)
        return b"".join(chunks)

    def temp(self, name: str) -> Path:
        """A new empty file in out_dir, removed if the scene fails."""
        stem, _, suffix = name.rpartition(".")
        fd, path = tempfile.mkstemp(
            prefix=f".{stem}.", suffix=f".part.{suffix}", dir=self.request.out_dir
        )
        os.close(fd)
        self.written.append(Path(path))
        return Path(path)

    def place(self, temp: Path, name: str) -> Path:
        final = self.request.out_dir / name
        os.replace(temp, final)
        self.written.append(final)
        return final

    def download(self, url: str, limit: int, name: str) -> Path:
        """``url`` saved to a temporary file, at most ``limit`` bytes; tried
        again like an API call. No key goes with it, and neither the URL nor
        a redirect may lead to this host or its private network."""
        engine = self.engine
        timeout = (engine.connect_timeout, engine.read_timeout)
        last = ""
        for attempt in range(engine.tries):
            response: requests.Response | None = None
            target = self.temp(name)
            try:
                with self._follow(url, timeout) as response:
                    status = response.status_code
                    if 200 <= status < 300:
                        self._save(response, target, limit)
                        return target
                    last = f"the download failed with HTTP {status}"
                    if status != 429 and status < 500:
                        raise self.error(last)
            except requests.RequestException as exc:
                last = (
                    f"the download stalled for {engine.read_timeout:g} s"
                    if _is_read_timeout(exc)
                    else f"the download from {urlsplit(url).netloc} was cut off"
                )
                response = None
            target.unlink(missing_ok=True)
            if attempt + 1 < engine.tries:
                self.pause(self._delay(attempt, response))
        raise self.error(f"{last} (gave up after {engine.tries} tries)")

    def _follow(self, url: str, timeout: tuple[float, float]) -> requests.Response:
        """The response at ``url`` after at most MAX_REDIRECTS redirects,
        each hop's address checked before it is asked."""
        for _ in range(MAX_REDIRECTS + 1):
            self._check_download_url(url)
            response = self.session.get(
                url, timeout=timeout, stream=True, allow_redirects=False
            )
            location = response.headers.get("Location")
            if not response.is_redirect or not location:
                return response
            response.close()
            url = urljoin(url, location)
        raise self.error(f"the download redirected more than {MAX_REDIRECTS} times")

    def _check_download_url(self, url: str) -> None:
        """A result must be at an http(s) URL whose host resolves to public
        addresses only: a service (or a redirect) pointing the worker at its
        own network would otherwise make it fetch from there. A name that
        does not resolve now is tried again like a dropped connection."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.error(f"the result is not at an http(s) URL ({parts.scheme}:)")
        if self.engine.private_downloads:
            return
        host = parts.hostname
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise self.error("the result's URL has no valid port") from None
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except UnicodeError:
            raise self.error(f"the result's host {host!r} is not a name") from None
        except OSError as exc:
            raise requests.ConnectionError(f"{host} does not resolve") from exc
        for address in sorted({str(info[4][0]) for info in found}):
            if not is_public_address(address):
                raise self.error(
                    f"the result is at {host}, a private address ({address}); refused"
                )

    def _save(self, response: requests.Response, target: Path, limit: int) -> None:
        announced = response.headers.get("Content-Length", "")
        if announced.isdigit() and int(announced) > limit:
            raise self.error(
                f"the result is {int(announced) / MB:.1f} MB, more than the"
                f" {limit / MB:g} MB allowed"
            )
        size = 0
        with target.open("wb") as out:
            for chunk in response.iter_content(CHUNK):
                if self.request.stop.is_set():
                    raise SceneStopped(f"scene {self.request.index} was stopped")
                size += len(chunk)
                if size > limit:
                    raise self.error(f"the result is more than {limit / MB:g} MB")
                out.write(chunk)

    def discard(self) -> None:
        for path in self.written:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        self.session.close()


class CloudEngine:
    """Scenes made by a cloud service's model (``params["api"]``)."""

    name = "api"
    version = "api-1"
    # Runway and Gemini take the seed; DALL-E 3 and Kling have none and
    # ignore it. Either way a new seed may give a different answer, which is
    # what the consistency gate asks of a seeded engine.
    seeded = True

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 180.0,
        tries: int = 3,
        backoff: float = 2.0,
        max_retry_after: float = 60.0,
        poll_interval: float = 5.0,
        poll_timeout: float = 900.0,
        max_image_bytes: int = 50 * MB,
        max_video_bytes: int = 500 * MB,
        private_downloads: bool = False,
    ) -> None:
        """``private_downloads`` lets results be fetched from private
        addresses (a service run inside the studio's own network)."""
        if tries < 1:
            raise ValueError("tries must be at least 1")
        self.private_downloads = private_downloads
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.tries = tries
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self.poll_interval = poll_interval
        self.poll_timeout = poll_timeout
        self.max_image_bytes = max_image_bytes
        self.max_video_bytes = max_video_bytes

    def render(self, request: SceneRequest) -> SceneOutput:
        model = request.model
        if model is None:
            raise ValueError("the cloud engine needs a model")
        api = str(model.params.get("api", ""))
        if api not in SERVICE_NAMES:
            raise CloudError(
                f"model {model.key}: unknown cloud service {api!r} (its registry"
                f" param api must be one of {', '.join(SERVICE_NAMES)})"
            )
        label = f"{SERVICE_NAMES[api]} ({model.params.get('model', model.key)})"
        if model.task != SERVICE_TASKS[api]:
            raise CloudError(
                f"{label}: makes {SERVICE_TASKS[api]}s, but model {model.key} is"
                f" registered as a {model.task} model"
            )
        if not str(model.params.get("model", "")).strip():
            raise CloudError(f"{label}: model {model.key} has no param model")
        if not model.api_key.strip():
            setting = model.params.get("key_setting") or "the service's API key setting"
            raise CloudError(f"{label}: no API key; set {setting}")
        base = (model.base_url or DEFAULT_BASE_URLS[api]).rstrip("/")
        if urlsplit(base).scheme not in ("http", "https"):
            raise CloudError(f"{label}: the base URL must be http(s)")
        # Kling's key is two: its access key and its secret, each kept out.
        pieces = model.api_key.split(":", 1) if api == "kling" else []
        secrets = (model.api_key, *pieces)
        client = _Client(self, request, model, api, secrets)
        request.report(0.0, f"scene {request.index}: asking {SERVICE_NAMES[api]}")
        try:
            if api == "openai-images":
                return self._still(client, self._openai(client, request, model, base))
            if api == "gemini-image":
                return self._still(client, self._gemini(client, request, model, base))
            if api == "runway":
                url = self._runway(client, request, model, base)
            else:
                url = self._kling(client, request, model, base)
            return self._clip(client, url)
        except BaseException:
            client.discard()
            raise
        finally:
            client.close()

    # -- images --------------------------------------------------------------

    def _openai(
        self, client: _Client, request: SceneRequest, model: ModelRef, base: str
    ) -> bytes:
        params = model.params
        size = str(
            params.get("size") or nearest(DALLE3_SIZES, request.width, request.height)
        )
        body: dict[str, Any] = {
            "model": params["model"],
            "prompt": request.prompt[: PROMPT_LIMITS["openai-images"]],
            "size": size,
            "n": 1,
            "response_format": "b64_json",
        }
        for key in ("quality", "style"):  # "hd", "natural" ...
            if params.get(key):
                body[key] = params[key]
        headers = {"Authorization": f"Bearer {model.api_key}"}
        reply = client.call("POST", f"{base}/images/generations", headers, body)
        try:
            encoded = reply["data"][0]["b64_json"]
        except (KeyError, IndexError, TypeError):
            raise client.error("the reply holds no image (data[0].b64_json)") from None
        return self._decode(client, encoded)

    def _gemini(
        self, client: _Client, request: SceneRequest, model: ModelRef, base: str
    ) -> bytes:
        params = model.params
        photo = photo_jpeg(request.image)
        image_config: dict[str, Any] = {
            "aspectRatio": str(
                params.get("aspect_ratio")
                or nearest(GEMINI_RATIOS, request.width, request.height)
            )
        }
        if params.get("image_size"):  # "1K", "2K", "4K"
            image_config["imageSize"] = str(params["image_size"])
        body = {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"text": request.prompt},
                        {
                            "inlineData": {
                                "mimeType": "image/jpeg",
                                "data": base64.b64encode(photo).decode(),
                            }
                        },
                    ],
                }
            ],
            "generationConfig": {
                "responseModalities": ["IMAGE"],
                "imageConfig": image_config,
                "seed": request.seed % 2**31,
            },
        }
        url = f"{base}/models/{quote(str(params['model']), safe='-._')}:generateContent"
        headers = {"x-goog-api-key": model.api_key}
        reply = client.call("POST", url, headers, body)
        if not isinstance(reply, dict):
            raise client.error("the reply is not a JSON object")
        feedback = reply.get("promptFeedback") or {}
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            raise client.error(
                f"the prompt was refused (blocked: {feedback['blockReason']})"
            )
        found: str | None = None
        reasons: list[str] = []
        for candidate in _dicts(reply.get("candidates")):
            if candidate.get("finishReason") not in (None, "STOP"):
                reasons.append(str(candidate["finishReason"]))
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            for part in _dicts(parts):
                inline = part.get("inlineData") or part.get("inline_data")
                # Gemini 3 sends its draft images as "thought" parts first:
                # the answer is the last image that is not a thought.
                if (
                    isinstance(inline, dict)
                    and inline.get("data")
                    and not part.get("thought")
                ):
                    found = inline["data"]
        if found is None:
            why = f" (finish reason: {', '.join(reasons)})" if reasons else ""
            raise client.error(f"the reply holds no image{why}")
        return self._decode(client, found)

    def _decode(self, client: _Client, encoded: Any) -> bytes:
        if not isinstance(encoded, str):
            raise client.error("the reply's image is not base64 text")
        if len(encoded) * 3 // 4 > self.max_image_bytes:
            raise client.error(
                f"the image is more than {self.max_image_bytes / MB:g} MB"
            )
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise client.error("the reply's image is not valid base64") from None

    def _still(self, client: _Client, data: bytes) -> SceneOutput:
        """The service's picture, decoded and written again as PNG (a bad
        payload stops here, not in the renderer), and its preview."""
        try:
            with Image.open(io.BytesIO(data)) as opened:
                opened.load()
                picture = opened.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError, DecompressionBombError):
            raise client.error("the reply's image is not a picture") from None
        request = client.request
        request.report(0.9, f"scene {request.index}: preview")
        temp = client.temp("still.png")
        picture.save(temp, "PNG")
        preview = self._preview(client, picture)
        still = client.place(temp, "still.png")
        request.report(1.0)
        return SceneOutput(preview=preview, still=still)

    def _preview(self, client: _Client, picture: Image.Image) -> Path:
        height = max(2, round(PREVIEW_WIDTH * picture.height / picture.width / 2) * 2)
        temp = client.temp("preview.jpg")
        picture.convert("RGB").resize((PREVIEW_WIDTH, height)).save(
            temp, "JPEG", quality=85
        )
        return client.place(temp, "preview.jpg")

    # -- clips ---------------------------------------------------------------

    def _poll(
        self,
        client: _Client,
        model: ModelRef,
        check: Callable[[], tuple[bool, float | None, str]],
    ) -> None:
        """Call ``check`` (done?, progress or None, status) every poll
        interval until it says done, reporting progress; a CloudError after
        the poll timeout. A stop ends the wait at once."""
        params = model.params
        interval = float(params.get("poll_interval", self.poll_interval))
        limit = float(params.get("poll_timeout", self.poll_timeout))
        request = client.request
        started = time.monotonic()
        while True:
            done, progress, status = check()
            if done:
                return
            elapsed = time.monotonic() - started
            share = progress if progress is not None else min(elapsed / limit, 1.0)
            request.report(
                0.05 + 0.8 * share,
                f"scene {request.index}: {SERVICE_NAMES[str(params['api'])]} {status}",
            )
            if elapsed + interval > limit:
                raise client.error(
                    f"the task did not finish within {limit:g} s (last status:"
                    f" {status})"
                )
            client.pause(interval)

    def _runway(
        self, client: _Client, request: SceneRequest, model: ModelRef, base: str
    ) -> str:
        params = model.params
        landscape = request.width >= request.height
        ratio = str(params.get("ratio") or ("1280:768" if landscape else "768:1280"))
        photo = photo_jpeg(request.image, aspect=_ratio(ratio), focus=request.focus)
        body = {
            "model": params["model"],
            "promptImage": "data:image/jpeg;base64," + base64.b64encode(photo).decode(),
            "promptText": request.prompt[: PROMPT_LIMITS["runway"]],
            "ratio": ratio,
            "duration": clip_seconds(request.frames / request.fps, params),
            "seed": request.seed % 2**32,
        }
        headers = {
            "Authorization": f"Bearer {model.api_key}",
            "X-Runway-Version": RUNWAY_VERSION,
        }
        reply = client.call("POST", f"{base}/image_to_video", headers, body)
        task_id = reply.get("id") if isinstance(reply, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise client.error("the reply holds no task id")
        task: dict[str, Any] = {}

        def check() -> tuple[bool, float | None, str]:
            nonlocal task
            answer = client.call("GET", f"{base}/tasks/{quote(task_id)}", headers)
            if not isinstance(answer, dict):
                raise client.error("the task's status is not a JSON object")
            task = answer
            status = str(task.get("status", "unknown"))
            progress = task.get("progress")
            share = float(progress) if isinstance(progress, int | float) else None
            return status in RUNWAY_FINISHED, share, status.lower()

        self._poll(client, model, check)
        status = task.get("status")
        if status != "SUCCEEDED":
            reason = task.get("failure") or task.get("failureCode") or "no reason given"
            raise client.error(f"the task {str(status).lower()}: {reason}")
        output = task.get("output")
        if not isinstance(output, list) or not output or not isinstance(output[0], str):
            raise client.error("the finished task lists no output")
        return output[0]

    def _kling(
        self, client: _Client, request: SceneRequest, model: ModelRef, base: str
    ) -> str:
        params = model.params
        access, sep, secret = model.api_key.partition(":")
        if not sep or not access.strip() or not secret.strip():
            setting = params.get("key_setting") or "the service's API key setting"
            raise client.error(f"{setting} must be ACCESS_KEY:SECRET_KEY")
        limit = PROMPT_LIMITS["kling"]
        photo = photo_jpeg(
            request.image, aspect=request.width / request.height, focus=request.focus
        )
        body: dict[str, Any] = {
            "model_name": params["model"],
            "image": base64.b64encode(photo).decode(),
            "prompt": request.prompt[:limit],
            "negative_prompt": request.negative_prompt[:limit],
            "duration": str(clip_seconds(request.frames / request.fps, params)),
        }
        for key in ("cfg_scale", "mode"):  # 0..1; "std" or "pro"
            if params.get(key) is not None:
                body[key] = params[key]

        def headers() -> dict[str, str]:
            # A fresh token each time: a long task outlives one.
            token = kling_token(access, secret)
            client.keep_secret(token)
            return {"Authorization": f"Bearer {token}"}

        def data_of(answer: Any) -> dict[str, Any]:
            # Kling answers errors inside a 200 too: code 0 is success.
            if not isinstance(answer, dict) or not isinstance(answer.get("data"), dict):
                raise client.error("the reply holds no data")
            if answer.get("code") not in (0, None):
                raise client.error(
                    f"code {answer['code']}: {answer.get('message') or 'no message'}"
                )
            return answer["data"]

        url = f"{base}/v1/videos/image2video"
        created = data_of(client.call("POST", url, headers, body))
        task_id = created.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise client.error("the reply holds no task_id")
        task: dict[str, Any] = {}

        def check() -> tuple[bool, float | None, str]:
            nonlocal task
            task = data_of(client.call("GET", f"{url}/{quote(task_id)}", headers))
            status = str(task.get("task_status", "unknown"))
            return status in ("succeed", "failed"), None, status

        self._poll(client, model, check)
        if task.get("task_status") != "succeed":
            reason = task.get("task_status_msg") or "no reason given"
            raise client.error(f"the task failed: {reason}")
        try:
            video_url = task["task_result"]["videos"][0]["url"]
        except (KeyError, IndexError, TypeError):
            raise client.error("the finished task lists no video") from None
        if not isinstance(video_url, str):
            raise client.error("the finished task's video URL is not text")
        return video_url

    def _clip(self, client: _Client, url: str) -> SceneOutput:
        """The clip at ``url``, downloaded, checked to be a video that FFmpeg
        decodes, with a preview of one of its frames."""
        request = client.request
        request.report(0.85, f"scene {request.index}: downloading the clip")
        temp = client.download(url, self.max_video_bytes, "clip.mp4")
        try:
            _stream, fmt = probe_video(temp)
        except ValueError:
            raise client.error("the download is not a video FFmpeg can read") from None
        picked: Image.Image | None = None
        try:
            with av.open(
                str(temp), format=fmt, options={"protocol_whitelist": "file"}
            ) as container:
                for n, frame in enumerate(container.decode(video=0)):
                    picked = frame.to_image()
                    if n >= PREVIEW_FRAME:
                        break
        except (av.error.FFmpegError, OSError, ValueError):
            picked = None
        if picked is None:
            raise client.error("the downloaded video has no frame that decodes")
        request.report(0.95, f"scene {request.index}: preview")
        preview = self._preview(client, picked)
        clip = client.place(temp, "clip.mp4")
        request.report(1.0)
        return SceneOutput(preview=preview, clip=clip)
