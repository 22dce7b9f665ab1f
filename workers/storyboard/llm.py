"""The optional LLM stage of the storyboard's prompt pipeline.

Any OpenAI-compatible chat endpoint (llama.cpp server, Ollama's /v1, vLLM, a
cloud provider) may rewrite the concept, scene and narrative stages of every
scene's prompt, in one request per storyboard. This module either returns
validated text or raises ``LLMError`` with a reason fit to show a user; the
caller then falls back to the deterministic templates.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from urllib3.exceptions import ReadTimeoutError

STAGE_KEYS = ("concept", "scene", "narrative")
MAX_STAGE_CHARS = 400
# A chat reply is a few kilobytes; a server streaming more is broken.
MAX_BODY_BYTES = 4 * 1024 * 1024
ERROR_DETAIL_CHARS = 200

SYSTEM_PROMPT = """\
You are the director of a music video. For every scene you are given, rewrite \
three stages of its image prompt as short, concrete visual phrases:
- "concept": what the scene shows (subject, action, key objects);
- "scene": where and when it happens (place, time of day, weather, mood);
- "narrative": how the moment fits the song and the story so far.
Each scene comes with a template draft of these stages; improve it, do not \
contradict it, and use the script's text when there is one. Keep the style's \
vocabulary. When a scene features the character, describe them exactly as \
given, the same way in every scene; otherwise leave them out. Write no camera, \
lens, shot, lighting-setup, resolution or quality terms: those stages are done \
elsewhere. At most 60 words per stage.
Answer ONLY with JSON, no prose and no code fence: {"scenes": [{"index": 0, \
"concept": "...", "scene": "...", "narrative": "..."}, ...]} with one entry per \
scene index given."""


class LLMError(Exception):
    """Why the LLM stage gave nothing usable; ``reason`` is one of
    "timeout", "connection", "http", "malformed", "refused" (content-policy/empty).
    ``status`` is the HTTP status for "http"."""

    reason: str
    status: int | None

    def __init__(self, reason: str, message: str, *, status: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class LLMSettings:
    base_url: str  # e.g. "http://127.0.0.1:8080/v1"
    model: str
    api_key: str = field(default="", repr=False)  # kept out of logged reprs
    timeout: float = 20.0  # seconds, for the whole request (connect + read)
    temperature: float = 0.2
    max_tokens: int = 2048

    @property
    def enabled(self) -> bool:
        return bool(self.base_url.strip() and self.model.strip())


@dataclass(frozen=True)
class SceneBrief:
    """What the LLM is told about one scene."""

    index: int
    start: float  # seconds
    end: float
    section: str  # "verse", "chorus", ... ("" unknown)
    energy: str  # "calm" | "mid" | "high"
    features_character: bool
    script: str  # the script's text for this scene ("" none)
    draft: dict[str, str]  # the template pipeline's text for STAGE_KEYS


def _where(settings: LLMSettings) -> str:
    """The server's address for messages, without any userinfo or query."""
    parts = urlsplit(settings.base_url)
    host = parts.hostname or "?"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a bad port is reported by the request itself
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _error_detail(body: bytes, api_key: str) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        found = error or data.get("message") or data.get("detail")
        if isinstance(found, str):
            text = found
    text = " ".join(text.split())
    if api_key:  # servers sometimes echo the request's headers back
        text = text.replace(api_key, "***")
    return text[:ERROR_DETAIL_CHARS] or "(no error message)"


def _post(
    settings: LLMSettings, payload: dict[str, Any], session: requests.Session
) -> tuple[int, bytes]:
    url = settings.base_url.rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json"}
    if settings.api_key:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    where = _where(settings)
    # requests' timeout bounds each socket wait; the deadline bounds a server
    # that trickles its answer, so the whole request stays near ``timeout``.
    deadline = time.monotonic() + settings.timeout
    timed_out = LLMError(
        "timeout",
        f"The LLM server at {where} did not answer in {settings.timeout:g} s.",
    )
    try:
        response = session.post(
            url, json=payload, headers=headers, timeout=settings.timeout, stream=True
        )
        with response:
            # read1 returns what has arrived, so a trickling server meets the
            # deadline; urllib3 < 2.3 lacks it and falls back to read.
            read = getattr(response.raw, "read1", response.raw.read)
            body = bytearray()
            while chunk := read(65536, decode_content=True):
                body += chunk
                if time.monotonic() > deadline:
                    raise timed_out
                if len(body) > MAX_BODY_BYTES:
                    raise LLMError(
                        "malformed",
                        f"The LLM server at {where} sent more than "
                        f"{MAX_BODY_BYTES} bytes.",
                    )
    except (requests.Timeout, ReadTimeoutError) as exc:
        raise timed_out from exc
    except (requests.ConnectionError, urllib3.exceptions.HTTPError) as exc:
        raise LLMError(
            "connection",
            f"Could not connect to the LLM server at {where}, or it dropped the "
            "connection.",
        ) from exc
    except requests.RequestException as exc:
        raise LLMError(
            "connection", f"Could not send a request to {where}: {type(exc).__name__}."
        ) from exc
    return response.status_code, bytes(body)


def chat(
    settings: LLMSettings,
    messages: list[dict[str, str]],
    *,
    json_mode: bool = False,
    session: requests.Session | None = None,
) -> str:
    """POST the messages to ``{base_url}/chat/completions``; return the reply's
    text (``choices[0].message.content``) or raise ``LLMError``."""
    payload: dict[str, Any] = {
        "model": settings.model,
        "messages": messages,
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
    }
    if json_mode:
        payload["response_format"] = {"type": "json_object"}
    if session is None:
        with requests.Session() as own:
            status, body = _post(settings, payload, own)
    else:
        status, body = _post(settings, payload, session)
    where = _where(settings)
    if not 200 <= status < 300:
        detail = _error_detail(body, settings.api_key)
        raise LLMError(
            "http",
            f"The LLM server at {where} answered HTTP {status}: {detail}",
            status=status,
        )
    try:
        choice = json.loads(body)["choices"][0]
        message = choice["message"]
        finish = choice.get("finish_reason")
        content = message.get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise LLMError(
            "malformed",
            f"The LLM server at {where} did not answer like an "
            "OpenAI-compatible chat endpoint (no choices[0].message).",
        ) from exc
    if finish == "content_filter":
        raise LLMError("refused", "The LLM declined the request (content filter).")
    if content is not None and not isinstance(content, str):
        raise LLMError("malformed", "The LLM's reply content is not text.")
    if not content or not content.strip():
        raise LLMError("refused", "The LLM gave an empty reply.")
    if json_mode and finish == "length":
        # Cut-off JSON never parses; saying why beats a parse error.
        raise LLMError(
            "malformed",
            f"The LLM's reply was cut off at max_tokens "
            f"({settings.max_tokens}); raise it or shorten the storyboard.",
        )
    return content


def build_messages(
    *,
    title: str,
    style_name: str,
    style_dna: str,
    character: str,
    briefs: list[SceneBrief],
) -> list[dict[str, str]]:
    """The messages ``expand_scenes`` sends, so callers can fingerprint first."""
    request = {
        "title": title,
        "style": {"name": style_name, "vocabulary": style_dna},
        "character": character or "(no recurring character)",
        "scenes": [
            {
                **asdict(brief),
                "start": round(brief.start, 2),
                "end": round(brief.end, 2),
                "draft": {key: brief.draft.get(key, "") for key in STAGE_KEYS},
            }
            for brief in briefs
        ],
    }
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": json.dumps(request, ensure_ascii=False, indent=1)},
    ]


def request_fingerprint(settings: LLMSettings, messages: list[dict[str, str]]) -> str:
    """The cache key of a request; the api_key is not part of it, so rotating
    a key does not ask again."""
    canonical = json.dumps(
        [
            settings.base_url.rstrip("/"),
            settings.model,
            settings.temperature,
            settings.max_tokens,
            messages,
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _rejects_json_mode(exc: LLMError) -> bool:
    text = str(exc).lower()
    return exc.status == 400 and ("response_format" in text or "json_object" in text)


def _find_json(content: str) -> Any:
    """The one JSON object in a reply, tolerating a code fence or prose around it."""
    candidates = [content.strip()]
    fenced = re.search(r"```(?:json)?\s*(.*?)```", content, re.DOTALL | re.IGNORECASE)
    if fenced:
        candidates.append(fenced.group(1).strip())
    first, last = content.find("{"), content.rfind("}")
    if 0 <= first < last:
        candidates.append(content[first : last + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise LLMError("malformed", "The LLM's reply holds no JSON object.")


def _trim(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_STAGE_CHARS:
        return text
    head = text[:MAX_STAGE_CHARS]
    if text[MAX_STAGE_CHARS] != " " and " " in head:
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(" ,;:-")


def _validate(data: Any, briefs: list[SceneBrief]) -> list[dict[str, str]]:
    scenes = data.get("scenes") if isinstance(data, dict) else None
    if not isinstance(scenes, list):
        raise LLMError("malformed", 'The LLM\'s reply has no "scenes" list.')
    wanted = {brief.index for brief in briefs}
    found: dict[int, dict[str, str]] = {}
    for item in scenes:
        index = item.get("index") if isinstance(item, dict) else None
        if not isinstance(index, int) or isinstance(index, bool):
            raise LLMError("malformed", "An entry of the LLM's reply has no index.")
        if index not in wanted:
            raise LLMError(
                "malformed", f"The LLM's reply has an unknown scene {index}."
            )
        if index in found:
            raise LLMError("malformed", f"The LLM's reply has scene {index} twice.")
        stages = {}
        for key in STAGE_KEYS:
            value = item.get(key)
            if not isinstance(value, str) or not value.strip():
                raise LLMError(
                    "malformed", f'The LLM\'s reply has no "{key}" for scene {index}.'
                )
            stages[key] = _trim(value)
        found[index] = stages
    missing = sorted(wanted - found.keys())
    if missing:
        listed = ", ".join(str(i) for i in missing)
        raise LLMError("malformed", f"The LLM's reply leaves out scene(s) {listed}.")
    return [found[brief.index] for brief in briefs]


def expand_scenes(
    settings: LLMSettings,
    *,
    title: str,
    style_name: str,
    style_dna: str,
    character: str,
    briefs: list[SceneBrief],
    session: requests.Session | None = None,
) -> list[dict[str, str]]:
    """Ask once for every scene's concept, scene and narrative; return them in
    the briefs' order, validated, or raise ``LLMError``."""
    if not briefs:
        return []
    messages = build_messages(
        title=title,
        style_name=style_name,
        style_dna=style_dna,
        character=character,
        briefs=briefs,
    )
    try:
        content = chat(settings, messages, json_mode=True, session=session)
    except LLMError as exc:
        # Some local servers reject response_format; the prompt asks for JSON
        # anyway, so one plain retry usually works.
        if not _rejects_json_mode(exc):
            raise
        content = chat(settings, messages, session=session)
    return _validate(_find_json(content), briefs)
