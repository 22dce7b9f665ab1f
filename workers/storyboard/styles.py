"""Style presets and the transition table, read from the YAML files beside
this module (``styles.yaml``, ``transitions.yaml``) and checked against what
the renderer can do: every grade is a ``GRADES`` preset, every transition
and move one the renderer knows.

The web app copies the presets into its database, where the admin edits
them; it hands the planner ``StylePreset`` values, so nothing here knows
where a preset came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from workers.assembly.beatsync import JOIN_KINDS
from workers.assembly.grading import GRADES
from workers.assembly.motion import MOVES
from workers.assembly.transitions import TRANSITIONS

HERE = Path(__file__).resolve().parent
STYLES_FILE = HERE / "styles.yaml"
TRANSITIONS_FILE = HERE / "transitions.yaml"
VOCABULARY_KEYS = ("settings", "lighting", "palette", "texture", "camera")


class StyleError(ValueError):
    """A preset or the transition table is not usable; says which and why."""


@dataclass(frozen=True)
class StylePreset:
    key: str
    name: str
    description: str = ""
    prompt: tuple[str, ...] = ()  # the style's DNA
    negative: tuple[str, ...] = ()
    vocabulary: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    grade: str | None = None  # a GRADES name
    grade_intensity: float = 0.0
    transitions: tuple[str, ...] = ("cut", "crossfade")
    motion: float = 0.5  # 0 still .. 1 restless
    moves: tuple[str, ...] = ("zoom_in", "pan_right", "zoom_out", "pan_left")

    def words(self, key: str) -> tuple[str, ...]:
        return tuple(self.vocabulary.get(key, ()))

    @property
    def dna(self) -> str:
        return ", ".join(self.prompt)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "prompt": list(self.prompt),
            "negative": list(self.negative),
            "vocabulary": {k: list(v) for k, v in self.vocabulary.items()},
            "grade": (
                {"preset": self.grade, "intensity": self.grade_intensity}
                if self.grade
                else None
            ),
            "transitions": list(self.transitions),
            "motion": self.motion,
            "moves": list(self.moves),
        }


def _strings(where: str, value: Any, *, allow_empty: bool = False) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(
        isinstance(v, str) and v.strip() for v in value
    ):
        raise StyleError(f"{where}: give a list of words or phrases")
    if not value and not allow_empty:
        raise StyleError(f"{where}: give at least one")
    return tuple(v.strip() for v in value)


def _choices(where: str, values: Sequence[str], known: Mapping | Sequence) -> None:
    unknown = [v for v in values if v not in known]
    if unknown:
        raise StyleError(
            f"{where}: unknown {', '.join(unknown)}; choose from {', '.join(known)}"
        )


def check_grade(where: str, grade: str | None, intensity: float) -> None:
    if grade is not None:
        _choices(where, [grade], GRADES)
    if not 0.0 <= intensity <= 1.0:
        raise StyleError(f"{where}: intensity must be between 0 and 1")


def check_motion(where: str, motion: float) -> None:
    if not 0.0 <= motion <= 1.0:
        raise StyleError(f"{where}: motion must be between 0 and 1")


def preset_from_dict(key: str, data: Mapping[str, Any]) -> StylePreset:
    """A preset from its YAML (or admin) form; StyleError naming the field."""
    if not isinstance(data, Mapping):
        raise StyleError(f"style {key!r}: expected a mapping of its settings")
    known = {
        "name", "description", "prompt", "negative", "vocabulary", "grade",
        "transitions", "motion", "moves",
    }  # fmt: skip
    extra = sorted(set(data) - known)
    if extra:
        raise StyleError(f"style {key!r}: unknown keys {', '.join(extra)}")
    where = f"style {key!r}"
    vocabulary_in = data.get("vocabulary") or {}
    if not isinstance(vocabulary_in, Mapping):
        raise StyleError(f"{where}.vocabulary: expected a mapping")
    _choices(f"{where}.vocabulary", list(vocabulary_in), VOCABULARY_KEYS)
    vocabulary = {
        k: _strings(f"{where}.vocabulary.{k}", v) for k, v in vocabulary_in.items()
    }
    grade_in = data.get("grade")
    grade, intensity = None, 0.0
    if grade_in is not None:
        if not isinstance(grade_in, Mapping) or "preset" not in grade_in:
            raise StyleError(f"{where}.grade: give {{preset, intensity}} or null")
        grade = str(grade_in["preset"])
        intensity = float(grade_in.get("intensity", 1.0))
    check_grade(f"{where}.grade", grade, intensity)
    transitions = _strings(f"{where}.transitions", data.get("transitions", ["cut"]))
    _choices(f"{where}.transitions", transitions, TRANSITIONS)
    moves = _strings(f"{where}.moves", data.get("moves", ["zoom_in"]))
    _choices(f"{where}.moves", moves, MOVES)
    motion = float(data.get("motion", 0.5))
    check_motion(where, motion)
    return StylePreset(
        key=key,
        name=str(data.get("name") or key),
        description=str(data.get("description") or ""),
        prompt=_strings(f"{where}.prompt", data.get("prompt", [])),
        negative=_strings(
            f"{where}.negative", data.get("negative", []), allow_empty=True
        ),
        vocabulary=vocabulary,
        grade=grade,
        grade_intensity=intensity,
        transitions=transitions,
        motion=motion,
        moves=moves,
    )


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise StyleError(f"{path.name}: {exc}") from exc


def load_styles(path: Path = STYLES_FILE) -> dict[str, StylePreset]:
    """Every preset in the file, in its order."""
    data = _read_yaml(path)
    if not isinstance(data, Mapping) or not data:
        raise StyleError(f"{path.name}: expected a mapping of style presets")
    return {str(key): preset_from_dict(str(key), value) for key, value in data.items()}


@cache
def default_styles() -> dict[str, StylePreset]:
    return load_styles()


def load_join_preferences(path: Path = TRANSITIONS_FILE) -> dict[str, tuple[str, ...]]:
    """The transition each kind of join prefers, best first (beatsync's
    ``preferences``)."""
    data = _read_yaml(path)
    joins = data.get("joins") if isinstance(data, Mapping) else None
    if not isinstance(joins, Mapping):
        raise StyleError(f"{path.name}: expected a 'joins' mapping")
    _choices(f"{path.name} joins", list(joins), JOIN_KINDS)
    table = {str(k): _strings(f"{path.name} joins.{k}", v) for k, v in joins.items()}
    for kind, names in table.items():
        _choices(f"{path.name} joins.{kind}", names, TRANSITIONS)
    return table


def load_moods(path: Path = TRANSITIONS_FILE) -> dict[str, tuple[str, ...]]:
    """Transitions grouped by feel, for the editor's menus."""
    data = _read_yaml(path)
    moods = data.get("moods") if isinstance(data, Mapping) else None
    if not isinstance(moods, Mapping):
        raise StyleError(f"{path.name}: expected a 'moods' mapping")
    table = {str(k): _strings(f"{path.name} moods.{k}", v) for k, v in moods.items()}
    for mood, names in table.items():
        _choices(f"{path.name} moods.{mood}", names, TRANSITIONS)
    return table


@cache
def join_preferences() -> dict[str, tuple[str, ...]]:
    return load_join_preferences()
