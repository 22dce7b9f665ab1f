"""Local stand-ins for the cloud services the cloud scene engine calls, for
tests that run its real HTTP code without a network.

Each fake answers the requests the engine makes of the real service, in that
service's shapes (as its public REST reference describes them):

- ``FakeOpenAI``: ``POST /v1/images/generations`` (Bearer key), the picture
  as ``data[0].b64_json``; a wrong key is a 401
  ``{"error": {"message", "type", "code"}}``.
- ``FakeGemini``: ``POST /v1beta/models/{model}:generateContent``
  (``x-goog-api-key``), the picture as an ``inlineData`` part after a
  ``thought`` draft, as Gemini 3 image models answer; ``mode`` switches to a
  prompt block (``promptFeedback.blockReason``) or an image refused after
  generation (``finishReason: IMAGE_SAFETY``). A wrong key is a 400
  ``API_KEY_INVALID``, as Google answers.
- ``FakeRunway``: ``POST /v1/image_to_video`` (Bearer key and
  ``X-Runway-Version``), then ``GET /v1/tasks/{id}``: PENDING, RUNNING with
  ``progress``, then SUCCEEDED with ``output`` URLs (or FAILED with
  ``failure`` and ``failureCode``, or RUNNING for ever); ``stalled_polls``
  status requests are answered only after ``stall`` seconds.
- ``FakeKling``: ``POST /v1/videos/image2video`` and ``GET
  /v1/videos/image2video/{task_id}``, authorised by a JWT that the fake
  verifies with the secret key (signature, ``iss``, ``nbf``, ``exp``);
  ``{"code": 0, "data": {...}}`` envelopes, ``task_status`` submitted,
  processing, then succeed (or failed with ``task_status_msg``).

Unlike the real services, every fake echoes the key it was sent in its
refusal, so a test can check that the engine keeps it out of its errors.

Results are served at ``/files/{name}`` without auth, as signed CDN links
are. Every request is recorded in ``.requests`` (API calls and downloads),
and ``queue(...)`` makes the next API requests answer with canned replies
(an error status, a Retry-After, a slow answer, a broken body) before the
fake's own behaviour resumes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    """One request as a fake saw it."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON body, or None
    at: float = field(default_factory=time.monotonic)


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_jwt(token: str, secret: str) -> dict[str, Any] | None:
    """The claims of an HS256 JWT signed with ``secret`` and valid now; None
    for any other token."""
    try:
        head, body, signature = token.split(".")
        header = json.loads(_b64url_decode(head))
        claims = json.loads(_b64url_decode(body))
    except ValueError:
        return None
    digest = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256)
    expected = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    if not hmac.compare_digest(expected, signature) or header.get("alg") != "HS256":
        return None
    now = time.time()
    if not claims.get("nbf", now) <= now < claims.get("exp", 0):
        return None
    return claims


class FakeService:
    """A ThreadingHTTPServer on 127.0.0.1 (a free port) that records every
    request and answers API calls with ``route`` unless replies are queued."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.queued: list[Reply] = []
        self.files: dict[str, bytes] = {}
        self.announce_length = True  # a Content-Length on downloads
        self.redirects: dict[str, str] = {}  # file name -> where a 302 sends it
        self._lock = threading.Lock()
        self._closing = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                fake._handle(self)

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll interval so that close() returns at once.
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self.queued.extend(replies)

    def file_url(self, name: str) -> str:
        return f"{self.url}/files/{name}"

    def api_requests(self) -> list[Seen]:
        return [r for r in self.requests if not r.path.startswith("/files/")]

    def downloads(self) -> list[Seen]:
        return [r for r in self.requests if r.path.startswith("/files/")]

    def close(self) -> None:
        self._closing.set()  # wakes handlers that are holding an answer back
        self.server.shutdown()
        self.server.server_close()

    def route(self, seen: Seen) -> Reply:
        raise NotImplementedError

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        seen = Seen(
            method=handler.command,
            path=handler.path,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
        )
        with self._lock:
            self.requests.append(seen)
            queued = None
            if not seen.path.startswith("/files/") and self.queued:
                queued = self.queued.pop(0)
        if seen.path.startswith("/files/"):
            self._send_file(handler, seen.path.removeprefix("/files/"))
            return
        reply = queued or self.route(seen)
        if reply.delay:
            self._closing.wait(reply.delay)
        data = (
            reply.body
            if isinstance(reply.body, bytes)
            else json.dumps(reply.body).encode()
        )
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout tests)

    def _send_file(self, handler: BaseHTTPRequestHandler, name: str) -> None:
        data = self.files.get(name)
        try:
            if name in self.redirects:
                handler.send_response(302)
                handler.send_header("Location", self.redirects[name])
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            if data is None:
                handler.send_response(404)
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            handler.send_response(200)
            handler.send_header("Content-Type", "video/mp4")
            if self.announce_length:
                handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            for start in range(0, len(data), 64 * 1024):
                handler.wfile.write(data[start : start + 64 * 1024])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading (the size cap)


def _not_found(seen: Seen) -> Reply:
    return Reply(404, {"error": {"message": f"no route {seen.method} {seen.path}"}})


class FakeOpenAI(FakeService):
    """OpenAI's image generation endpoint; its base URL is ``url + "/v1"``."""

    def __init__(self, key: str, picture: bytes) -> None:
        super().__init__()
        self.key = key
        self.picture = picture

    def route(self, seen: Seen) -> Reply:
        if (seen.method, seen.path) != ("POST", "/v1/images/generations"):
            return _not_found(seen)
        sent = seen.headers.get("authorization", "").removeprefix("Bearer ")
        if sent != self.key:
            message = f"Incorrect API key provided: {sent}."
            error = {"message": message, "type": "invalid_request_error"}
            return Reply(401, {"error": {**error, "code": "invalid_api_key"}})
        encoded = base64.b64encode(self.picture).decode()
        return Reply(
            200,
            {
                "created": int(time.time()),
                "data": [{"b64_json": encoded, "revised_prompt": "a revised prompt"}],
            },
        )


class FakeGemini(FakeService):
    """The Gemini API's generateContent; its base URL is ``url + "/v1beta"``.
    ``mode``: "image", "blocked" (the prompt refused) or "image_safety" (the
    picture refused after generation)."""

    def __init__(self, key: str, picture: bytes, draft: bytes) -> None:
        super().__init__()
        self.key = key
        self.picture = picture
        self.draft = draft  # the "thought" image that comes first
        self.mode = "image"

    def route(self, seen: Seen) -> Reply:
        if seen.method != "POST" or not seen.path.startswith("/v1beta/models/"):
            return _not_found(seen)
        if not seen.path.endswith(":generateContent"):
            return _not_found(seen)
        sent = seen.headers.get("x-goog-api-key", "")
        if sent != self.key:
            message = f"API key not valid. Please pass a valid API key. ({sent})"
            error = {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}
            return Reply(400, {"error": error})
        if self.mode == "blocked":
            return Reply(200, {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}})
        if self.mode == "image_safety":
            parts = [{"text": "I can't make that picture."}]
            candidate = {"content": {"parts": parts, "role": "model"}}
            return Reply(
                200, {"candidates": [candidate | {"finishReason": "IMAGE_SAFETY"}]}
            )
        parts = [
            {"text": "Here is the scene."},
            {"inlineData": self._inline(self.draft), "thought": True},
            {"inlineData": self._inline(self.picture)},
        ]
        candidate = {
            "content": {"parts": parts, "role": "model"},
            "finishReason": "STOP",
        }
        return Reply(200, {"candidates": [candidate]})

    @staticmethod
    def _inline(data: bytes) -> dict[str, str]:
        return {"mimeType": "image/png", "data": base64.b64encode(data).decode()}


class FakeRunway(FakeService):
    """Runway's image-to-video API; its base URL is ``url + "/v1"``.
    ``outcome``: "SUCCEEDED", "FAILED" or "never"; a task ends on its
    ``polls``-th status request. ``output_url`` overrides where the clip is
    said to be."""

    VERSION = "2024-11-06"

    def __init__(self, key: str, clip: bytes) -> None:
        super().__init__()
        self.key = key
        self.files["clip.mp4"] = clip
        self.outcome = "SUCCEEDED"
        self.polls = 3
        self.output_url: str | None = None
        self.stalled_polls = 0  # status requests answered only after a stall
        self.stall = 0.0
        self.tasks: dict[str, int] = {}  # id -> status requests so far

    def route(self, seen: Seen) -> Reply:
        sent = seen.headers.get("authorization", "").removeprefix("Bearer ")
        if sent != self.key:
            return Reply(401, {"error": f"Incorrect API key: {sent}"})
        if seen.headers.get("x-runway-version") != self.VERSION:
            return Reply(400, {"error": "X-Runway-Version header is missing."})
        if (seen.method, seen.path) == ("POST", "/v1/image_to_video"):
            task_id = str(uuid.uuid4())
            with self._lock:
                self.tasks[task_id] = 0
            return Reply(200, {"id": task_id})
        task_id = seen.path.removeprefix("/v1/tasks/")
        if seen.method != "GET" or task_id not in self.tasks:
            return _not_found(seen)
        with self._lock:
            if self.stalled_polls:
                self.stalled_polls -= 1
                return Reply(
                    200, {"id": task_id, "status": "RUNNING"}, delay=self.stall
                )
            self.tasks[task_id] += 1
            count = self.tasks[task_id]
        task: dict[str, Any] = {"id": task_id, "createdAt": "2025-01-01T00:00:00Z"}
        if count == 1:
            return Reply(200, task | {"status": "PENDING"})
        if count < self.polls or self.outcome == "never":
            return Reply(200, task | {"status": "RUNNING", "progress": 0.5})
        if self.outcome == "FAILED":
            failure = "The prompt was flagged by content moderation."
            return Reply(
                200,
                task | {
                    "status": "FAILED", "failure": failure,
                    "failureCode": "SAFETY.INPUT.TEXT",
                },
            )  # fmt: skip
        output = self.output_url or self.file_url("clip.mp4")
        return Reply(200, task | {"status": "SUCCEEDED", "output": [output]})


class FakeKling(FakeService):
    """Kling's image-to-video API; its base URL is ``url``. ``outcome``:
    "succeed", "failed" or "never"; a task ends on its ``polls``-th status
    request. ``claims`` holds every verified token's claims."""

    def __init__(self, access_key: str, secret_key: str, clip: bytes) -> None:
        super().__init__()
        self.access_key = access_key
        self.secret_key = secret_key
        self.files["clip.mp4"] = clip
        self.outcome = "succeed"
        self.polls = 3
        self.claims: list[dict[str, Any]] = []
        self.tasks: dict[str, int] = {}

    def route(self, seen: Seen) -> Reply:
        token = seen.headers.get("authorization", "").removeprefix("Bearer ")
        claims = verify_jwt(token, self.secret_key)
        if claims is None or claims.get("iss") != self.access_key:
            message = f"Auth failed: token {token} is not valid"
            return Reply(401, {"code": 1004, "message": message, "request_id": "r1"})
        with self._lock:
            self.claims.append(claims)
        base = "/v1/videos/image2video"
        if (seen.method, seen.path) == ("POST", base):
            task_id = uuid.uuid4().hex
            with self._lock:
                self.tasks[task_id] = 0
            data = {"task_id": task_id, "task_status": "submitted"}
            return Reply(200, {"code": 0, "message": "SUCCEED", "data": data})
        task_id = seen.path.removeprefix(base + "/")
        if seen.method != "GET" or task_id not in self.tasks:
            return Reply(404, {"code": 1203, "message": "task not found"})
        with self._lock:
            self.tasks[task_id] += 1
            count = self.tasks[task_id]
        data = {"task_id": task_id, "task_status": "processing"}
        if count >= self.polls and self.outcome == "failed":
            data = data | {
                "task_status": "failed",
                "task_status_msg": "Failure to pass the risk control system",
            }
        elif count >= self.polls and self.outcome == "succeed":
            video = {"id": "v1", "url": self.file_url("clip.mp4"), "duration": "5"}
            data = data | {
                "task_status": "succeed",
                "task_result": {"videos": [video]},
            }
        return Reply(200, {"code": 0, "message": "SUCCEED", "data": data})
