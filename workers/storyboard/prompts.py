"""The prompt pipeline: seven small stages turn what the planner knows about
a scene into the prompt and negative prompt its model is given.

    concept     what the scene is about (the script's words, else the section
                and its energy)
    scene       where and when it happens
    visual      who and what is seen: the character, light, palette, texture
    cinematic   shot size, camera and lens, from the move and the energy
    narrative   where the scene sits in the story, and what came before
    technical   frame, duration and detail terms for the model
    polish      the consistency pass over the joined prompt: the style's DNA
                and the character present once, repeats removed, length kept
                within what a text encoder reads

Each stage is a function ``(ShotContext, Draft) -> str`` using the templates
below; choices among a style's words are made by a hash of the scene's seed
and the stage, so the same scene always gets the same prompt. A stage can be
switched off for a scene (it contributes nothing) or given the user's own
text; the LLM stage (``llm.py``) may supply the concept, scene and narrative
text instead of the templates. ``compose`` runs them in order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .styles import StylePreset

STAGES = ("concept", "scene", "visual", "cinematic", "narrative", "technical", "polish")
# Stages the LLM may write (the others are about the frame, not the story).
LLM_STAGES = ("concept", "scene", "narrative")
MAX_PROMPT_WORDS = 70  # CLIP reads 77 tokens; longer prompts lose their tail
MAX_STAGE_CHARS = 400
CUTAWAY = "a cutaway shot without the character"

GENERIC_NEGATIVE = (
    "blurry", "low quality", "deformed hands", "extra fingers", "watermark",
    "text", "logo",
)  # fmt: skip
CHARACTER_NEGATIVE = ("different person", "inconsistent face", "duplicate person")

ACTIONS = {
    "calm": (
        "standing still, lost in thought",
        "looking out of a window",
        "sitting quietly, eyes half closed",
        "walking slowly",
    ),
    "mid": (
        "walking with purpose",
        "turning towards the camera",
        "singing along, eyes closed",
        "leaning against a wall, nodding to the beat",
    ),
    "high": (
        "dancing with abandon",
        "jumping mid-air",
        "singing full-voiced to the sky",
        "running through the frame",
    ),
}
SECTION_MOODS = {
    "intro": "an opening image that sets the mood",
    "verse": "a story moment",
    "pre-chorus": "tension building",
    "chorus": "the emotional peak",
    "bridge": "a change of perspective",
    "breakdown": "a stripped-back moment",
    "drop": "an explosive release",
    "outro": "a closing image that lets go",
}
TIMES = ("at dawn", "in the afternoon", "at golden hour", "at dusk", "at night")
# A place that already says when ("a rooftop at dusk"): whole words only, so
# "a nightclub" still gets a time of day.
TIME_WORDS = re.compile(
    r"\b(?:dawn|sunrise|morning|noon|afternoon|hour|sunset|dusk|evening|night)\b",
    re.I,
)
SHOT_SIZES = {
    "calm": "close-up",
    "mid": "medium shot",
    "high": "wide dynamic shot",
}
MOVE_WORDS = {
    "zoom_in": "slow zoom in",
    "zoom_out": "slow pull back",
    "push_in": "push in towards the face",
    "push_out": "pull back reveal",
    "pan_left": "lateral tracking shot to the left",
    "pan_right": "lateral tracking shot to the right",
    "pan_up": "tilt up",
    "pan_down": "tilt down",
    "static": "locked-off camera",
}


@dataclass(frozen=True)
class CharacterRef:
    """Who the video is about, as prompts name them. ``token`` is what an
    identity-conditioned model is told (a trigger word), ``references`` how
    many reference photos condition it."""

    name: str
    description: str = ""
    token: str = ""
    references: int = 0

    @property
    def label(self) -> str:
        return self.token or self.name


@dataclass(frozen=True)
class ShotContext:
    """What the planner knows about one scene, in plain values."""

    index: int
    count: int
    start: float  # seconds
    end: float
    section: str  # the music's section label ("" unknown)
    energy: str  # calm | mid | high
    move: str
    motion: float  # 0..1
    style: StylePreset
    seed: int = 0
    title: str = ""
    features_character: bool = True
    character: CharacterRef | None = None
    script_heading: str = ""
    script_text: str = ""
    previous: str = ""  # the previous scene's concept, for continuity
    model_kind: str = "photo"  # photo | image | video
    width: int = 1920
    height: int = 1080
    fps: int = 30

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Draft:
    """The stages' text so far, in order."""

    stages: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PromptResult:
    stages: dict[str, str]  # each stage's text ("" when off)
    sources: dict[str, str]  # stage -> template | llm | user | off
    prompt: str
    negative: str
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "stages": dict(self.stages),
            "sources": dict(self.sources),
            "prompt": self.prompt,
            "negative": self.negative,
        }


def choose(options: Sequence[str], seed: int, salt: str) -> str:
    """One of ``options``, the same one every time for this seed and salt."""
    if not options:
        return ""
    digest = hashlib.sha256(f"{seed}:{salt}".encode()).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]


def _first_sentence(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    sentence = match.group(1) if match else text
    if len(sentence) > limit:
        sentence = sentence[:limit].rsplit(" ", 1)[0]
    return sentence.rstrip(".!? ")


def _section_key(section: str) -> str:
    label = section.lower().strip()
    for key in SECTION_MOODS:
        if label.startswith(key):
            return key
    return ""


def _subject(ctx: ShotContext) -> str:
    if ctx.features_character and ctx.character is not None:
        return ctx.character.label
    return "no people"


# --- the stages ---------------------------------------------------------------


def concept(ctx: ShotContext, draft: Draft) -> str:
    if ctx.script_heading or ctx.script_text:
        parts = [ctx.script_heading, _first_sentence(ctx.script_text)]
        return ", ".join(p for p in parts if p)
    mood = SECTION_MOODS.get(_section_key(ctx.section), "a moment in the song")
    if ctx.features_character and ctx.character is not None:
        action = choose(ACTIONS.get(ctx.energy, ACTIONS["mid"]), ctx.seed, "action")
        return f"{ctx.character.label} {action}, {mood}"
    return f"{CUTAWAY}, {mood}"


PLACE = re.compile(
    r"\b(?:in|at|on|inside|under|across|through)\s+(?:a|an|the)\s+[^,.;:!?]+", re.I
)


def scene(ctx: ShotContext, draft: Draft) -> str:
    """Where and when: the place the script names ("... in a neon-lit
    arcade"), else one of the style's settings; then a time of day unless
    the place says one."""
    found = PLACE.search(f"{ctx.script_heading}. {ctx.script_text}")
    if found:
        place = found.group(0)
    else:
        place = choose(ctx.style.words("settings"), ctx.seed, "setting")
    if TIME_WORDS.search(place):
        return place
    return f"{place} {choose(TIMES, ctx.seed, 'time')}".strip()


def visual(ctx: ShotContext, draft: Draft) -> str:
    parts = []
    if ctx.features_character and ctx.character is not None:
        # Named once: the concept usually says who already.
        named = ctx.character.label.lower() in draft.stages.get("concept", "").lower()
        who = [] if named else [ctx.character.label]
        if ctx.character.description:
            who.append(ctx.character.description)
        parts.append(", ".join([*who, "same face and outfit as the reference photos"]))
    parts.append(choose(ctx.style.words("lighting"), ctx.seed, "lighting"))
    parts.append(choose(ctx.style.words("palette"), ctx.seed, "palette"))
    parts.append(choose(ctx.style.words("texture"), ctx.seed, "texture"))
    return ", ".join(p for p in parts if p)


def cinematic(ctx: ShotContext, draft: Draft) -> str:
    size = SHOT_SIZES.get(ctx.energy, "medium shot")
    key = _section_key(ctx.section)
    if ctx.index == 0 or key in ("intro", "outro"):
        size = "establishing wide shot"
    if not ctx.features_character:
        size = "wide shot"
    move = MOVE_WORDS.get(ctx.move, "")
    lens = choose(ctx.style.words("camera"), ctx.seed, "camera")
    return ", ".join(p for p in (size, move, lens) if p)


def narrative(ctx: ShotContext, draft: Draft) -> str:
    if ctx.count <= 1:
        act = "a single continuous moment"
    else:
        position = ctx.index / (ctx.count - 1)
        if ctx.index == 0:
            act = "the opening scene"
        elif ctx.index == ctx.count - 1:
            act = "the final scene"
        elif position < 0.4:
            act = "the story setting up"
        elif position < 0.75:
            act = "the story rising to its peak"
        else:
            act = "the story resolving"
    previous = ctx.previous
    if ctx.character is not None:
        # The character is named where the scene shows them, and only once.
        previous = re.sub(re.escape(ctx.character.label), "", previous, flags=re.I)
        previous = previous.strip(" ,")
    # Only what happened before (its first phrase), not its mood again.
    previous = previous.split(",")[0].strip()
    if previous.startswith(CUTAWAY):
        return f"{act}, after a cutaway"
    if previous:
        return f"{act}, following {previous}"
    return act


def technical(ctx: ShotContext, draft: Draft) -> str:
    ratio = ctx.width / ctx.height if ctx.height else 1.0
    frame = (
        "widescreen 16:9 frame"
        if ratio > 1.2
        else "vertical 9:16 frame"
        if ratio < 0.85
        else "square frame"
    )
    parts = [frame, "highly detailed", "sharp focus"]
    if ctx.model_kind == "video":
        motion = (
            "subtle"
            if ctx.motion < 0.34
            else "smooth"
            if ctx.motion < 0.67
            else "energetic"
        )
        parts += [
            f"{motion} natural motion",
            f"{ctx.duration:.1f} seconds at {ctx.fps} fps",
        ]
    return ", ".join(parts)


def _phrases(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _trim_words(phrases: Iterable[str], limit: int) -> list[str]:
    kept: list[str] = []
    words = 0
    for phrase in phrases:
        n = len(phrase.split())
        if words + n > limit:
            break
        kept.append(phrase)
        words += n
    return kept


# When the prompt must be cut, the stages keep their phrases in rounds, in
# this order: what happens and who, the camera, the look, the place, the story.
KEEP_ORDER = ("concept", "cinematic", "visual", "scene", "narrative")


def polish(ctx: ShotContext, draft: Draft) -> str:
    """The final prompt: the stages joined, each phrase once, the character
    first and the style's DNA present, within ``MAX_PROMPT_WORDS``. When
    something must go, each stage keeps its first phrases (in rounds, in
    ``KEEP_ORDER``) and loses its last; the DNA and the technical terms
    always stay, and what stays keeps the stages' order."""
    dna = list(ctx.style.prompt)
    technical_terms = _phrases(draft.stages.get("technical", ""))
    tagged: list[tuple[str, str]] = []  # (stage, phrase), each phrase once
    seen = {p.lower() for p in [*dna, *technical_terms]}  # always there
    for stage, text in draft.stages.items():
        if stage in ("technical", "polish"):
            continue
        for phrase in _phrases(text):
            if phrase.lower() not in seen:
                seen.add(phrase.lower())
                tagged.append((stage, phrase))
    if ctx.features_character and ctx.character is not None:
        label = ctx.character.label
        if not any(label.lower() in p.lower() for _, p in tagged):
            tagged.insert(0, ("concept", label))
    budget = MAX_PROMPT_WORDS - sum(len(p.split()) for p in [*dna, *technical_terms])
    budget = max(budget, 10)
    # In rounds: every stage keeps its first phrase before any keeps its
    # second, so a long concept cannot push the camera out of the prompt.
    queues = {
        stage: [i for i, (tag, _) in enumerate(tagged) if tag == stage]
        for stage in KEEP_ORDER
    }
    kept: set[int] = set()
    while any(queues.values()):
        for stage in KEEP_ORDER:
            if not queues[stage]:
                continue
            i = queues[stage].pop(0)
            words = len(tagged[i][1].split())
            if words > budget:
                queues[stage].clear()  # its later phrases matter less still
                continue
            kept.add(i)
            budget -= words
    story = [phrase for i, (_, phrase) in enumerate(tagged) if i in kept]
    final: list[str] = []
    for phrase in [*story, *dna, *technical_terms]:
        if phrase.lower() not in {f.lower() for f in final}:
            final.append(phrase)
    return ", ".join(_trim_words(final, MAX_PROMPT_WORDS))


STAGE_FUNCTIONS: dict[str, Callable[[ShotContext, Draft], str]] = {
    "concept": concept,
    "scene": scene,
    "visual": visual,
    "cinematic": cinematic,
    "narrative": narrative,
    "technical": technical,
    "polish": polish,
}


def negative_prompt(ctx: ShotContext) -> str:
    parts = [*ctx.style.negative, *GENERIC_NEGATIVE]
    if ctx.features_character and ctx.character is not None:
        parts += CHARACTER_NEGATIVE
    kept: list[str] = []
    for part in parts:
        if part.lower() not in {k.lower() for k in kept}:
            kept.append(part)
    return ", ".join(kept)


def _clean(text: str, limit: int = MAX_STAGE_CHARS) -> str:
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0]
    return text


def compose(
    ctx: ShotContext,
    *,
    off: Iterable[str] = (),
    user: Mapping[str, str] | None = None,
    llm: Mapping[str, str] | None = None,
) -> PromptResult:
    """Run the stages in order. ``off``: stages that contribute nothing;
    ``user``: the user's text for a stage (kept as written); ``llm``: text the
    LLM stage wrote for some of ``LLM_STAGES``. With ``polish`` off, the
    prompt is the stages' text joined as it is."""
    disabled = set(off)
    unknown = disabled - set(STAGES)
    if unknown:
        raise ValueError(f"unknown prompt stages: {', '.join(sorted(unknown))}")
    user = {k: v for k, v in (user or {}).items() if v and v.strip()}
    unknown = set(user) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown prompt stages: {', '.join(sorted(unknown))}")
    llm = llm or {}
    draft = Draft()
    sources: dict[str, str] = {}
    for stage in STAGES:
        if stage in disabled:
            draft.stages[stage] = ""
            sources[stage] = "off"
        elif stage in user:
            draft.stages[stage] = _clean(user[stage])
            sources[stage] = "user"
        elif stage in LLM_STAGES and llm.get(stage):
            draft.stages[stage] = _clean(llm[stage])
            sources[stage] = "llm"
        else:
            text = STAGE_FUNCTIONS[stage](ctx, draft)
            # The polished prompt is bounded by words, not characters.
            draft.stages[stage] = _clean(
                text, 10**6 if stage == "polish" else MAX_STAGE_CHARS
            )
            sources[stage] = "template"
    if "polish" in disabled:
        prompt = ", ".join(
            draft.stages[s] for s in STAGES if s != "polish" and draft.stages[s]
        )
    else:
        prompt = draft.stages["polish"]
    return PromptResult(
        stages=dict(draft.stages),
        sources=sources,
        prompt=prompt,
        negative=negative_prompt(ctx),
    )
