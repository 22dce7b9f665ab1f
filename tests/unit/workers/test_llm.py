"""The LLM stage against a real local HTTP server that speaks the OpenAI chat
API and checks every request it gets."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from workers.storyboard.llm import (
    STAGE_KEYS,
    LLMError,
    LLMSettings,
    SceneBrief,
    build_messages,
    chat,
    expand_scenes,
    request_fingerprint,
)

KEY = "sk-test"
MODEL = "tiny-director"


class FakeOpenAI(ThreadingHTTPServer):
    """Answers with scripted replies in order; records each request and any
    way it differs from what an OpenAI-compatible client must send."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.replies: list[tuple[int, Any, float, float]] = []
        self.received: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.expected_auth: str | None = f"Bearer {KEY}"
        self.release = threading.Event()  # ends the sleeps of a timeout test

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def reply(
        self, body: Any, status: int = 200, delay: float = 0.0, gap: float = 0.0
    ) -> None:
        """``delay``: a wait before answering; ``gap``: one between bytes."""
        self.replies.append((status, body, delay, gap))

    def reply_content(
        self, content: str, finish_reason: str = "stop", delay: float = 0.0
    ) -> None:
        message = {"role": "assistant", "content": content}
        choice = {"index": 0, "message": message, "finish_reason": finish_reason}
        self.reply({"object": "chat.completion", "choices": [choice]}, delay=delay)

    def check(self, handler: _Handler, body: Any) -> None:
        if handler.command != "POST":
            self.problems.append(f"method {handler.command}")
        if handler.path != "/v1/chat/completions":
            self.problems.append(f"path {handler.path}")
        if handler.headers.get("Authorization") != self.expected_auth:
            self.problems.append(
                f"authorization {handler.headers.get('Authorization')}"
            )
        if not isinstance(body, dict) or body.get("model") != MODEL:
            self.problems.append("body without the model")
            return
        roles = [m.get("role") for m in body.get("messages", [])]
        if roles != ["system", "user"]:
            self.problems.append(f"message roles {roles}")
        if "temperature" not in body or "max_tokens" not in body:
            self.problems.append("body without temperature or max_tokens")


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.server.received.append({"headers": dict(self.headers), "body": body})
        self.server.check(self, body)
        if not self.server.replies:
            self.server.problems.append("a request with no reply scripted")
            self._send(500, {"error": {"message": "no reply scripted"}})
            return
        status, reply, delay, gap = self.server.replies.pop(0)
        if delay:
            self.server.release.wait(delay)
        self._send(status, reply, gap)

    do_GET = do_PUT = do_POST  # so a wrong method is recorded, not just refused

    def _send(self, status: int, reply: Any, gap: float = 0.0) -> None:
        data = reply.encode() if isinstance(reply, str) else json.dumps(reply).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            pieces = [data[i : i + 1] for i in range(len(data))] if gap else [data]
            for piece in pieces:
                self.wfile.write(piece)
                self.wfile.flush()
                self.server.release.wait(gap)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first: the timeout test's point

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    thread = threading.Thread(target=fake.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    fake.release.set()
    fake.shutdown()
    fake.server_close()
    assert fake.problems == []


@pytest.fixture
def llm(server: FakeOpenAI) -> LLMSettings:
    return LLMSettings(base_url=server.base_url, model=MODEL, api_key=KEY, timeout=5)


BRIEFS = [
    SceneBrief(
        index=0,
        start=0.0,
        end=4.0,
        section="intro",
        energy="calm",
        features_character=False,
        script="",
        draft={"concept": "empty highway", "scene": "desert at dusk", "narrative": ""},
    ),
    SceneBrief(
        index=1,
        start=4.0,
        end=8.5,
        section="verse",
        energy="mid",
        features_character=True,
        script="She drives toward the neon city",
        draft={
            "concept": "woman at the wheel",
            "scene": "car interior",
            "narrative": "",
        },
    ),
    SceneBrief(
        index=2,
        start=8.5,
        end=12.0,
        section="chorus",
        energy="high",
        features_character=True,
        script="The lights explode around her",
        draft={"concept": "fireworks", "scene": "city rooftop", "narrative": "arrival"},
    ),
]

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def scenes_reply(indexes: list[int] | None = None, **overrides: str) -> str:
    indexes = [0, 1, 2] if indexes is None else indexes
    scenes = [
        {key: overrides.get(key, f"{key} of scene {i}") for key in STAGE_KEYS}
        | {"index": i}
        for i in indexes
    ]
    return json.dumps({"scenes": scenes})


def expand(settings: LLMSettings) -> list[dict[str, str]]:
    return expand_scenes(
        settings,
        title="Night drive",
        style_name="Neon noir",
        style_dna="neon, wet asphalt, magenta and cyan",
        character="a woman with short silver hair and a red jacket",
        briefs=BRIEFS,
    )


def test_it_returns_each_scenes_stages_in_the_briefs_order(server, llm):
    reply = json.loads(scenes_reply([2, 0, 1]))
    server.reply_content(json.dumps(reply))

    scenes = expand(llm)

    assert scenes == [{k: f"{k} of scene {i}" for k in STAGE_KEYS} for i in (0, 1, 2)]
    body = server.received[0]["body"]
    assert body["response_format"] == {"type": "json_object"}
    user = body["messages"][1]["content"]
    assert "Night drive" in user and "silver hair" in user and "Neon noir" in user
    for brief in BRIEFS:
        assert brief.script in user
        assert all(text in user for text in brief.draft.values())


def test_it_reads_a_json_reply_inside_a_code_fence(server, llm):
    server.reply_content(f"Here you go:\n```json\n{scenes_reply()}\n```\nEnjoy!")

    assert expand(llm)[1]["scene"] == "scene of scene 1"


def test_it_sends_no_authorization_header_without_a_key(server, llm):
    server.expected_auth = None
    server.reply_content("hello")

    assert chat(replace(llm, api_key=""), CHAT) == "hello"
    assert "response_format" not in server.received[0]["body"]


def test_a_slow_server_times_out_quickly(server, llm):
    server.reply_content(scenes_reply(), delay=5.0)

    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        expand(replace(llm, timeout=0.3))

    assert caught.value.reason == "timeout"
    assert time.monotonic() - started < 1.5


def test_a_server_trickling_its_answer_times_out_at_the_deadline(server, llm):
    server.reply({"choices": [{"message": {"content": scenes_reply()}}]}, gap=0.05)

    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        expand(replace(llm, timeout=0.3))

    assert caught.value.reason == "timeout"
    assert time.monotonic() - started < 1.0


def test_a_closed_port_is_a_connection_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = LLMSettings(base_url=f"http://127.0.0.1:{port}/v1", model=MODEL)

    with pytest.raises(LLMError) as caught:
        chat(closed, CHAT)

    assert caught.value.reason == "connection"
    assert f"127.0.0.1:{port}" in str(caught.value)


def test_a_server_error_names_the_status_and_never_the_key(server, llm):
    echo = f"model crashed; request had Authorization: Bearer {KEY} " + "x" * 500
    server.reply({"error": {"message": echo, "type": "server_error"}}, status=500)

    with pytest.raises(LLMError) as caught:
        expand(llm)

    assert caught.value.reason == "http"
    assert caught.value.status == 500
    assert "500" in str(caught.value) and "model crashed" in str(caught.value)
    assert KEY not in str(caught.value)
    assert len(str(caught.value)) < 300


def test_a_server_rejecting_response_format_is_asked_again_without_it(server, llm):
    server.reply({"error": {"message": "response_format is not supported"}}, status=400)
    server.reply_content(scenes_reply())

    assert len(expand(llm)) == 3
    first, second = (request["body"] for request in server.received)
    assert first["response_format"] == {"type": "json_object"}
    assert "response_format" not in second
    assert first["messages"] == second["messages"]


def test_another_bad_request_is_not_retried(server, llm):
    server.reply({"error": {"message": "model not found"}}, status=400)

    with pytest.raises(LLMError, match="model not found") as caught:
        expand(llm)

    assert caught.value.reason == "http"
    assert len(server.received) == 1


def assert_malformed(settings: LLMSettings, match: str) -> None:
    with pytest.raises(LLMError, match=match) as caught:
        expand(settings)
    assert caught.value.reason == "malformed"


def test_prose_instead_of_json_is_malformed(server, llm):
    server.reply_content("Sure! Scene one is a highway, scene two a car.")

    assert_malformed(llm, "no JSON")


def test_a_missing_scene_is_malformed(server, llm):
    server.reply_content(scenes_reply([0, 2]))

    assert_malformed(llm, "leaves out scene.* 1")


def test_a_scene_given_twice_is_malformed(server, llm):
    server.reply_content(scenes_reply([0, 1, 1, 2]))

    assert_malformed(llm, "scene 1 twice")


def test_an_unknown_scene_is_malformed(server, llm):
    server.reply_content(scenes_reply([0, 1, 2, 3]))

    assert_malformed(llm, "unknown scene 3")


def test_an_empty_stage_is_malformed(server, llm):
    server.reply_content(scenes_reply(narrative="  "))

    assert_malformed(llm, 'no "narrative" for scene 0')


def test_a_body_not_shaped_like_openai_is_malformed(server, llm):
    server.reply({"result": scenes_reply()})

    assert_malformed(llm, "OpenAI-compatible")


def test_a_content_filter_stop_is_refused(server, llm):
    server.reply_content("", finish_reason="content_filter")

    with pytest.raises(LLMError) as caught:
        expand(llm)

    assert caught.value.reason == "refused"


def test_an_empty_reply_is_refused(server, llm):
    server.reply_content("   ")

    with pytest.raises(LLMError) as caught:
        expand(llm)

    assert caught.value.reason == "refused"


def test_a_reply_cut_off_at_max_tokens_says_so(server, llm):
    server.reply_content(scenes_reply()[:50], finish_reason="length")

    assert_malformed(llm, "max_tokens")


def test_an_overlong_stage_is_trimmed_at_a_word_boundary(server, llm):
    long = " ".join(f"word{i}" for i in range(200))  # about 1,200 characters
    server.reply_content(scenes_reply(concept=long))

    concept = expand(llm)[0]["concept"]

    assert 300 < len(concept) <= 400
    assert long.startswith(concept)
    assert long[len(concept)] == " "


def test_no_scenes_ask_nothing(server, llm):
    assert (
        expand_scenes(
            llm, title="", style_name="", style_dna="", character="", briefs=[]
        )
        == []
    )
    assert server.received == []


def test_settings_are_enabled_with_a_url_and_a_model():
    assert LLMSettings(base_url="http://h/v1", model="m").enabled
    assert not LLMSettings(base_url="", model="m").enabled
    assert not LLMSettings(base_url="http://h/v1", model=" ").enabled
    assert KEY not in repr(LLMSettings(base_url="http://h/v1", model="m", api_key=KEY))


def messages_for(title: str = "Night drive") -> list[dict[str, str]]:
    return build_messages(
        title=title,
        style_name="Neon noir",
        style_dna="neon",
        character="",
        briefs=BRIEFS,
    )


def test_the_fingerprint_follows_the_model_and_the_messages_but_not_the_key():
    base = LLMSettings(base_url="http://h/v1", model="a", api_key="one")
    same = request_fingerprint(base, messages_for())

    assert request_fingerprint(replace(base), messages_for()) == same
    assert request_fingerprint(replace(base, api_key="two"), messages_for()) == same
    assert request_fingerprint(replace(base, model="b"), messages_for()) != same
    assert request_fingerprint(base, messages_for("Day drive")) != same
    assert len(same) == 64 and int(same, 16) >= 0
