"""The cloud engine against local stand-ins of OpenAI Images, Gemini, Runway
and Kling (tests/cloud_servers.py): what it sends (paths, auth, bodies, as the
fakes recorded them), what it keeps (a real PNG or a clip FFmpeg decodes),
and how it fails (refused keys, rate limits, outages, timeouts, broken
replies, refusals, failed and endless tasks, stops, bad or oversize
downloads), always with the service named, never with the key, and with
nothing left in the scene's folder."""

from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.cloud_servers import (
    FakeGemini,
    FakeKling,
    FakeOpenAI,
    FakeRunway,
    FakeService,
    Reply,
)
from workers.assembly.ffmpeg import ffmpeg_exe
from workers.assembly.sources import probe_video
from workers.scenes import ModelRef, SceneRequest, SceneStopped
from workers.scenes.cloud import (
    DALLE3_SIZES,
    GEMINI_RATIOS,
    CloudEngine,
    CloudError,
    clip_seconds,
    nearest,
)

OPENAI_KEY = "sk-test-openai-0123456789"
GEMINI_KEY = "AIza-test-gemini-0123456789"
RUNWAY_KEY = "key_test_runway_0123456789"
KLING_ACCESS = "ak-test-kling-0123"
KLING_SECRET = "sk-test-kling-secret-4567"
PROMPT = "the singer walks through neon rain, cinematic"
# The fakes serve their results from 127.0.0.1, a private address.
FAST = {
    "connect_timeout": 1.0, "read_timeout": 1.0, "tries": 3, "backoff": 0.01,
    "max_retry_after": 0.5, "poll_interval": 0.01, "poll_timeout": 2.0,
    "private_downloads": True,
}  # fmt: skip


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def picture() -> bytes:
    """What the image services paint: a gradient with a block, as PNG."""
    x = np.linspace(0, 255, 64, dtype=np.float32)
    pixels = np.stack(
        [np.tile(x, (36, 1)), np.tile(x[::-1], (36, 1)), np.full((36, 64), 60.0)],
        axis=-1,
    ).astype(np.uint8)
    pixels[8:20, 20:40] = (240, 230, 30)
    return _png(pixels)


@pytest.fixture(scope="module")
def draft() -> bytes:
    """Gemini's "thought" draft, flat red: never the still."""
    return _png(np.full((36, 64, 3), (255, 0, 0), dtype=np.uint8))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """What the video services return: two seconds of H.264 made by ffmpeg."""
    path = tmp_path_factory.mktemp("clips") / "made.mp4"
    subprocess.run(
        [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
            "-f", "lavfi", "-i", "testsrc=size=64x36:rate=12:duration=2",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mp4", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path.read_bytes()


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scene's photo: 96x64, a different picture from the services'."""
    pixels = np.zeros((64, 96, 3), dtype=np.uint8)
    pixels[:, :48] = (20, 120, 220)
    pixels[16:48, 40:70] = (250, 250, 250)
    path = tmp_path_factory.mktemp("photos") / "portrait.png"
    Image.fromarray(pixels).save(path)
    return path


class _Services(dict[str, FakeService]):
    """The fakes, each started when a test first asks for it."""

    def __init__(self, make: dict[str, Callable[[], FakeService]]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, api: str) -> FakeService:
        self[api] = self.make[api]()
        return self[api]


@pytest.fixture
def services(picture, draft, clip) -> Iterator[dict[str, FakeService]]:
    fakes = _Services(
        {
            "openai-images": lambda: FakeOpenAI(OPENAI_KEY, picture),
            "gemini-image": lambda: FakeGemini(GEMINI_KEY, picture, draft),
            "runway": lambda: FakeRunway(RUNWAY_KEY, clip),
            "kling": lambda: FakeKling(KLING_ACCESS, KLING_SECRET, clip),
        }
    )
    yield fakes
    for fake in fakes.values():
        fake.close()


MODELS: dict[str, tuple[str, str, str, str]] = {
    # api: (task, service model, key, base URL path on the fake)
    "openai-images": ("image", "dall-e-3", OPENAI_KEY, "/v1"),
    "gemini-image": ("image", "gemini-3-pro-image-preview", GEMINI_KEY, "/v1beta"),
    "runway": ("video", "gen3a_turbo", RUNWAY_KEY, "/v1"),
    "kling": ("video", "kling-v1-6", f"{KLING_ACCESS}:{KLING_SECRET}", ""),
}


def _model(
    api: str, fake: FakeService, *, key: str | None = None, **params: Any
) -> ModelRef:
    task, name, default_key, path = MODELS[api]
    return ModelRef(
        key=f"cloud-{api}", task=task, store=Path("/nonexistent"), provider="api",
        params={"api": api, "model": name, **params},
        api_key=default_key if key is None else key, base_url=fake.url + path,
    )  # fmt: skip


def _request(
    tmp_path: Path,
    photo: Path,
    model: ModelRef,
    *,
    width: int = 64,
    height: int = 36,
    frames: int = 48,  # two seconds at 24 fps
    on_progress: Callable[[float, str], None] | None = None,
    stop: threading.Event | None = None,
) -> SceneRequest:
    out = tmp_path / "out"
    out.mkdir()
    return SceneRequest(
        index=3, image=photo, out_dir=out, width=width, height=height, fps=24,
        frames=frames, move="push_in", seed=7, prompt=PROMPT,
        negative_prompt="blurry", model=model, on_progress=on_progress,
        stop=stop or threading.Event(),
    )  # fmt: skip


def _decoded_jpeg(data: str) -> Image.Image:
    picture = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
    assert picture.format == "JPEG"
    return picture


def _pixels(path: Path | bytes) -> np.ndarray:
    source = io.BytesIO(path) if isinstance(path, bytes) else path
    with Image.open(source) as opened:
        return np.asarray(opened.convert("RGB"))


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def _preview_width(path: Path) -> int:
    with Image.open(path) as opened:
        assert opened.format == "JPEG"
        return opened.width


# -- what each service is sent, and what comes back ---------------------------


def test_dalle3_paints_the_still_from_the_prompt_alone_at_the_nearest_size(
    tmp_path, photo, services, picture
):
    fake = services["openai-images"]
    request = _request(tmp_path, photo, _model("openai-images", fake, quality="hd"))

    result = CloudEngine(**FAST).render(request)

    [seen] = fake.requests
    assert (seen.method, seen.path) == ("POST", "/v1/images/generations")
    assert seen.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert seen.body == {
        "model": "dall-e-3", "prompt": PROMPT, "size": "1792x1024", "n": 1,
        "response_format": "b64_json", "quality": "hd",
    }  # fmt: skip
    assert result.still == request.out_dir / "still.png"
    assert result.clip is None
    with Image.open(result.still) as still:
        assert still.format == "PNG"
    assert np.array_equal(_pixels(result.still), _pixels(picture))
    assert _preview_width(result.preview) == 320
    assert _names(request.out_dir) == {"still.png", "preview.jpg"}


def test_nano_banana_pro_repaints_the_photo_and_keeps_the_final_image(
    tmp_path, photo, services, picture
):
    fake = services["gemini-image"]
    request = _request(tmp_path, photo, _model("gemini-image", fake))

    result = CloudEngine(**FAST).render(request)

    [seen] = fake.requests
    assert seen.method == "POST"
    assert seen.path == "/v1beta/models/gemini-3-pro-image-preview:generateContent"
    assert seen.headers["x-goog-api-key"] == GEMINI_KEY
    assert "authorization" not in seen.headers
    [content] = seen.body["contents"]
    text, image = content["parts"]
    assert text == {"text": PROMPT}
    assert image["inlineData"]["mimeType"] == "image/jpeg"
    sent = _decoded_jpeg(image["inlineData"]["data"])
    assert sent.size == (96, 64)  # the whole photo, as a reference
    config = seen.body["generationConfig"]
    assert config["responseModalities"] == ["IMAGE"]
    assert config["imageConfig"] == {"aspectRatio": "16:9"}
    assert config["seed"] == 7
    # The final image, not the thought draft before it.
    assert np.array_equal(_pixels(result.still), _pixels(picture))
    assert _names(request.out_dir) == {"still.png", "preview.jpg"}


@pytest.mark.parametrize(
    ("width", "height", "frames", "ratio", "duration"),
    [(64, 36, 48, 5 / 3, 5), (36, 64, 168, 3 / 5, 10)],
    ids=["landscape-2s", "portrait-7s"],
)
def test_runway_animates_the_photo_and_brings_back_a_clip_that_plays(
    tmp_path, photo, services, clip, width, height, frames, ratio, duration
):
    fake = services["runway"]
    reports: list[tuple[float, str]] = []
    request = _request(
        tmp_path, photo, _model("runway", fake), width=width, height=height,
        frames=frames, on_progress=lambda f, m: reports.append((f, m)),
    )  # fmt: skip

    result = CloudEngine(**FAST).render(request)

    create, *polls = fake.api_requests()
    assert (create.method, create.path) == ("POST", "/v1/image_to_video")
    for seen in (create, *polls):
        assert seen.headers["authorization"] == f"Bearer {RUNWAY_KEY}"
        assert seen.headers["x-runway-version"] == "2024-11-06"
    body = dict(create.body)
    prefix, _, data = body.pop("promptImage").partition(",")
    assert prefix == "data:image/jpeg;base64"
    sent = _decoded_jpeg(data)
    assert sent.width / sent.height == pytest.approx(ratio, abs=0.05)
    assert body == {
        "model": "gen3a_turbo", "promptText": PROMPT,
        "ratio": "1280:768" if width > height else "768:1280",
        "duration": duration, "seed": 7,
    }  # fmt: skip
    [task_id] = fake.tasks
    assert [(p.method, p.path) for p in polls] == [("GET", f"/v1/tasks/{task_id}")] * 3
    [download] = fake.downloads()
    assert "authorization" not in download.headers  # the key stays with the API
    assert result.clip == request.out_dir / "clip.mp4"
    assert result.clip.read_bytes() == clip
    stream, _fmt = probe_video(result.clip)
    assert (stream.width, stream.height) == (64, 36)
    assert _preview_width(result.preview) == 320
    assert _names(request.out_dir) == {"clip.mp4", "preview.jpg"}
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("Runway running" in m for _, m in reports)


def test_kling_signs_its_token_with_the_secret_and_brings_back_the_clip(
    tmp_path, photo, services, clip
):
    fake = services["kling"]
    request = _request(tmp_path, photo, _model("kling", fake, cfg_scale=0.5))

    before = time.time()
    result = CloudEngine(**FAST).render(request)

    create, *polls = fake.api_requests()
    # The fake answers 401 to a token its secret does not verify.
    assert len(fake.claims) == 1 + len(polls) == 4
    for claims in fake.claims:
        assert claims["iss"] == KLING_ACCESS
        assert claims["exp"] - claims["nbf"] == 1805
        assert claims["exp"] >= before + 1799
    assert (create.method, create.path) == ("POST", "/v1/videos/image2video")
    body = dict(create.body)
    sent = _decoded_jpeg(body.pop("image"))  # plain base64, no data: prefix
    assert sent.width / sent.height == pytest.approx(64 / 36, abs=0.05)
    assert body == {
        "model_name": "kling-v1-6", "prompt": PROMPT, "negative_prompt": "blurry",
        "duration": "5", "cfg_scale": 0.5,
    }  # fmt: skip
    [task_id] = fake.tasks
    assert {p.path for p in polls} == {f"/v1/videos/image2video/{task_id}"}
    for seen in fake.requests:
        assert KLING_SECRET not in json.dumps(seen.headers) + json.dumps(seen.body)
    assert result.clip.read_bytes() == clip
    assert _names(request.out_dir) == {"clip.mp4", "preview.jpg"}


# -- failures ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "wrong_key", "said"),
    [
        ("openai-images", "sk-wrong-0123456789", "HTTP 401: Incorrect API key"),
        ("gemini-image", "AIza-wrong-0123456789", "HTTP 400: API key not valid"),
        ("runway", "key_wrong_0123456789", "HTTP 401: Incorrect API key"),
        ("kling", "ak-wrong-0123:sk-wrong-4567", "HTTP 401: Auth failed"),
    ],
)
def test_a_refused_key_fails_with_the_services_message_and_never_the_key(
    tmp_path, photo, services, caplog, api, wrong_key, said
):
    fake = services[api]
    request = _request(tmp_path, photo, _model(api, fake, key=wrong_key))

    with pytest.raises(CloudError) as caught:
        CloudEngine(**FAST).render(request)

    message = str(caught.value)
    assert said in message
    assert MODELS[api][1] in message  # names the service's model
    for secret in (wrong_key, *wrong_key.split(":")):
        assert secret not in message
        assert secret not in caplog.text
    assert "eyJ" not in message  # nor Kling's token made from it
    assert len(fake.requests) == 1  # a refusal is not tried again
    assert _names(request.out_dir) == set()


def test_a_rate_limit_is_tried_again_after_the_services_retry_after(
    tmp_path, photo, services
):
    fake = services["openai-images"]
    limited = {"error": {"message": "Rate limit reached", "code": "rate_limit"}}
    fake.queue(Reply(429, limited, headers={"Retry-After": "0.3"}))
    request = _request(tmp_path, photo, _model("openai-images", fake))

    result = CloudEngine(**FAST).render(request)

    first, second = fake.requests
    assert 0.3 <= second.at - first.at < 0.5  # Retry-After, not the 0.01 s backoff
    assert first.body == second.body
    assert result.still is not None and result.still.is_file()


def test_a_server_error_fails_after_three_tries(tmp_path, photo, services):
    fake = services["runway"]
    broken = Reply(500, {"error": "An unexpected error occurred."})
    fake.queue(broken, broken, broken, broken)
    request = _request(tmp_path, photo, _model("runway", fake))

    with pytest.raises(CloudError, match=r"HTTP 500: An unexpected error") as caught:
        CloudEngine(**FAST).render(request)

    assert "after 3 tries" in str(caught.value)
    assert str(caught.value).startswith("Runway (gen3a_turbo):")
    assert len(fake.requests) == 3
    assert _names(request.out_dir) == set()


def test_a_service_that_cannot_be_reached_is_tried_three_times(tmp_path, photo):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = ModelRef(
        key="cloud-openai", task="image", store=Path("/nonexistent"),
        params={"api": "openai-images", "model": "dall-e-3"},
        api_key=OPENAI_KEY, base_url=f"http://127.0.0.1:{port}/v1",
    )  # fmt: skip
    request = _request(tmp_path, photo, model)

    with pytest.raises(CloudError, match=r"could not connect.*after 3 tries"):
        CloudEngine(**FAST).render(request)


def test_a_service_that_does_not_answer_in_time_fails_and_is_not_asked_twice(
    tmp_path, photo, services
):
    fake = services["gemini-image"]
    fake.queue(Reply(200, {"candidates": []}, delay=2.0))
    request = _request(tmp_path, photo, _model("gemini-image", fake))
    engine = CloudEngine(**FAST | {"read_timeout": 0.3})

    started = time.monotonic()
    with pytest.raises(CloudError, match=r"no answer within 0.3 s"):
        engine.render(request)

    assert time.monotonic() - started < 1.5
    assert len(fake.requests) == 1  # a POST may have been taken: never sent twice
    assert _names(request.out_dir) == set()


def test_a_status_request_that_stalls_is_asked_again(tmp_path, photo, services, clip):
    fake = services["runway"]
    assert isinstance(fake, FakeRunway)
    fake.stalled_polls, fake.stall = 1, 2.0
    request = _request(tmp_path, photo, _model("runway", fake))

    result = CloudEngine(**FAST | {"read_timeout": 0.3}).render(request)

    # A GET changes nothing on the service: asking again is safe.
    assert len(fake.api_requests()) == 1 + 1 + 3
    assert result.clip is not None and result.clip.read_bytes() == clip


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (Reply(200, b"<html>gateway</html>"), "is not JSON"),
        (Reply(200, b'{"data": [{"b64_json": '), "is not JSON"),
        (Reply(200, {"data": []}), "holds no image"),
        (Reply(200, {"data": [{"b64_json": "not base64!"}]}), "not valid base64"),
    ],
    ids=["html", "cut-off", "no-image", "bad-base64"],
)
def test_a_malformed_reply_is_an_error_that_says_so(
    tmp_path, photo, services, reply, said
):
    fake = services["openai-images"]
    fake.queue(reply)
    request = _request(tmp_path, photo, _model("openai-images", fake))

    with pytest.raises(CloudError, match=said):
        CloudEngine(**FAST).render(request)

    assert _names(request.out_dir) == set()


@pytest.mark.parametrize(
    "body",
    [
        {"candidates": "none"},
        {"candidates": [{"content": ["parts"]}]},
        {"candidates": [{"content": {"parts": ["an image", 7]}}]},
    ],
    ids=["candidates-text", "content-list", "parts-not-objects"],
)
def test_a_gemini_reply_of_another_shape_says_it_holds_no_image(
    tmp_path, photo, services, body
):
    fake = services["gemini-image"]
    fake.queue(Reply(200, body))
    request = _request(tmp_path, photo, _model("gemini-image", fake))

    with pytest.raises(CloudError, match="holds no image"):
        CloudEngine(**FAST).render(request)


def test_an_image_that_is_not_a_picture_is_refused(tmp_path, photo, services):
    fake = services["openai-images"]
    assert isinstance(fake, FakeOpenAI)
    fake.picture = b"<?php system($_GET['c']); ?>" + bytes(200)
    request = _request(tmp_path, photo, _model("openai-images", fake))

    with pytest.raises(CloudError, match="not a picture"):
        CloudEngine(**FAST).render(request)

    assert _names(request.out_dir) == set()


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("blocked", "blocked: PROHIBITED_CONTENT"), ("image_safety", "IMAGE_SAFETY")],
)
def test_a_gemini_refusal_names_its_reason(tmp_path, photo, services, mode, reason):
    fake = services["gemini-image"]
    assert isinstance(fake, FakeGemini)
    fake.mode = mode
    request = _request(tmp_path, photo, _model("gemini-image", fake))

    with pytest.raises(CloudError, match=reason):
        CloudEngine(**FAST).render(request)

    assert len(fake.requests) == 1
    assert _names(request.out_dir) == set()


@pytest.mark.parametrize(
    ("api", "outcome", "reason"),
    [
        ("runway", "FAILED", "task failed: The prompt was flagged"),
        ("kling", "failed", "task failed: Failure to pass the risk control"),
    ],
)
def test_a_failed_task_names_the_services_reason(
    tmp_path, photo, services, api, outcome, reason
):
    fake = services[api]
    fake.outcome = outcome  # type: ignore[attr-defined]
    request = _request(tmp_path, photo, _model(api, fake))

    with pytest.raises(CloudError, match=reason):
        CloudEngine(**FAST).render(request)

    assert fake.downloads() == []
    assert _names(request.out_dir) == set()


@pytest.mark.parametrize("api", ["runway", "kling"])
def test_a_task_that_never_finishes_fails_after_the_poll_timeout(
    tmp_path, photo, services, api
):
    fake = services[api]
    fake.outcome = "never"  # type: ignore[attr-defined]
    request = _request(tmp_path, photo, _model(api, fake, poll_timeout=0.3))

    started = time.monotonic()
    with pytest.raises(CloudError, match=r"did not finish within 0.3 s"):
        CloudEngine(**FAST | {"poll_interval": 0.05}).render(request)

    assert time.monotonic() - started < 1.0
    assert len(fake.api_requests()) > 2  # it did poll, more than once
    assert _names(request.out_dir) == set()


def test_a_stop_during_polling_ends_the_scene_promptly(tmp_path, photo, services):
    fake = services["runway"]
    assert isinstance(fake, FakeRunway)
    fake.outcome = "never"
    stop = threading.Event()
    request = _request(tmp_path, photo, _model("runway", fake), stop=stop)
    # A long poll interval: the stop must cut the wait short, not outlast it.
    engine = CloudEngine(**FAST | {"poll_interval": 5.0, "poll_timeout": 60.0})
    threading.Timer(0.3, stop.set).start()

    started = time.monotonic()
    with pytest.raises(SceneStopped):
        engine.render(request)

    assert time.monotonic() - started < 1.5
    assert len(fake.api_requests()) == 2  # the task and one status request
    assert _names(request.out_dir) == set()


def test_a_download_that_is_not_a_video_is_refused(tmp_path, photo, services):
    fake = services["runway"]
    fake.files["clip.mp4"] = b"<html><body>Access denied</body></html>"
    request = _request(tmp_path, photo, _model("runway", fake))

    with pytest.raises(CloudError, match="not a video"):
        CloudEngine(**FAST).render(request)

    assert len(fake.downloads()) == 1
    assert _names(request.out_dir) == set()


@pytest.mark.parametrize("announced", [True, False], ids=["announced", "unannounced"])
def test_an_oversize_clip_is_refused(tmp_path, photo, services, clip, announced):
    fake = services["kling"]
    fake.announce_length = announced
    request = _request(tmp_path, photo, _model("kling", fake))

    with pytest.raises(CloudError, match=r"more than"):
        CloudEngine(**FAST | {"max_video_bytes": len(clip) // 2}).render(request)

    assert _names(request.out_dir) == set()


def test_a_result_at_a_private_address_is_never_fetched(tmp_path, photo, services):
    """A service (or whoever answers for it) naming an address of the
    worker's own network gets no request from the worker."""
    fake = services["runway"]
    request = _request(tmp_path, photo, _model("runway", fake))
    engine = CloudEngine(**FAST | {"private_downloads": False})

    with pytest.raises(CloudError, match=r"a private address \(127\.0\.0\.1\)"):
        engine.render(request)

    assert fake.downloads() == []
    assert _names(request.out_dir) == set()


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://[64:ff9b::7f00:1]/clip.mp4", r"a private address \(64:ff9b::7f00:1\)"),
        ("http://169.254.169.254/latest/meta-data/", "a private address"),
        ("http://[::ffff:10.0.0.1]:8080/clip.mp4", "a private address"),
        ("http://example.com:99999/clip.mp4", "no valid port"),
    ],
    ids=["nat64-loopback", "metadata-service", "mapped-lan", "bad-port"],
)
def test_a_result_url_into_the_workers_network_is_refused(
    tmp_path, photo, services, url, said
):
    fake = services["runway"]
    assert isinstance(fake, FakeRunway)
    fake.output_url = url
    request = _request(tmp_path, photo, _model("runway", fake))

    with pytest.raises(CloudError, match=said):
        CloudEngine(**FAST | {"private_downloads": False}).render(request)
    assert _names(request.out_dir) == set()


def test_redirects_are_followed_a_few_times_at_most(tmp_path, photo, services, clip):
    fake = services["runway"]
    fake.files["moved.mp4"] = clip
    fake.redirects["clip.mp4"] = "/files/moved.mp4"  # relative, as CDNs answer
    result = CloudEngine(**FAST).render(
        _request(tmp_path, photo, _model("runway", fake))
    )
    assert result.clip is not None
    assert [d.path for d in fake.downloads()] == ["/files/clip.mp4", "/files/moved.mp4"]

    fake.redirects["moved.mp4"] = fake.file_url("clip.mp4")  # a loop
    (tmp_path / "again").mkdir()
    looping = _request(tmp_path / "again", photo, _model("runway", fake))
    with pytest.raises(CloudError, match="redirected more than 5 times"):
        CloudEngine(**FAST | {"tries": 1}).render(looping)


def test_a_result_that_is_not_at_an_http_url_is_never_fetched(
    tmp_path, photo, services
):
    fake = services["runway"]
    assert isinstance(fake, FakeRunway)
    fake.output_url = "file:///etc/passwd"
    request = _request(tmp_path, photo, _model("runway", fake))

    with pytest.raises(CloudError, match=r"not at an http\(s\) URL"):
        CloudEngine(**FAST).render(request)

    assert _names(request.out_dir) == set()


@pytest.mark.parametrize("api", list(MODELS))
@pytest.mark.parametrize("setting", ["STUDIO_CLOUD_KEY", None])
def test_a_missing_key_fails_before_any_request(
    tmp_path, photo, services, api, setting
):
    fake = services[api]
    params = {"key_setting": setting} if setting else {}
    request = _request(tmp_path, photo, _model(api, fake, key="", **params))

    with pytest.raises(CloudError, match="no API key") as caught:
        CloudEngine(**FAST).render(request)

    assert (setting or "the service's API key setting") in str(caught.value)
    assert fake.requests == []


def test_a_kling_key_without_its_secret_fails_before_any_request(
    tmp_path, photo, services
):
    fake = services["kling"]
    model = _model("kling", fake, key="access-only", key_setting="STUDIO_KLING_KEY")
    request = _request(tmp_path, photo, model)

    with pytest.raises(CloudError, match="STUDIO_KLING_KEY must be ACCESS_KEY:SECRET"):
        CloudEngine(**FAST).render(request)

    assert fake.requests == []


# -- choices -------------------------------------------------------------------


def test_the_size_ratio_and_length_nearest_the_video_are_asked_for():
    assert nearest(DALLE3_SIZES, 1920, 1080) == "1792x1024"
    assert nearest(DALLE3_SIZES, 1080, 1920) == "1024x1792"
    assert nearest(DALLE3_SIZES, 1080, 1080) == "1024x1024"
    assert nearest(GEMINI_RATIOS, 1920, 1080) == "16:9"
    assert nearest(GEMINI_RATIOS, 1080, 1350) == "4:5"
    assert nearest(GEMINI_RATIOS, 2560, 1080) == "21:9"
    assert clip_seconds(2.0, {}) == 5
    assert clip_seconds(5.0, {}) == 5
    assert clip_seconds(7.5, {}) == 10
    assert clip_seconds(14.0, {}) == 10  # the longest; the renderer stretches it
    assert clip_seconds(7.5, {"max_seconds": 5}) == 5
