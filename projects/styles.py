"""Style presets in the database: copied from ``workers/storyboard/styles.yaml``,
edited in admin, handed to the planner as ``workers.storyboard.styles.StylePreset``
values."""

from __future__ import annotations

from typing import Any

from workers.storyboard.styles import StyleError, StylePreset, default_styles
from workers.storyboard.styles import preset_from_dict as _preset_from_dict

from .models import StylePreset as StyleRow

DEFAULT_STYLE = "cinematic"


class UnknownStyle(ValueError):
    """No enabled preset has this key; the message lists those that do."""


def row_fields(preset: StylePreset) -> dict[str, Any]:
    """A ``StylePreset`` row's fields: the preset's own form, with its grade
    split into the row's two columns."""
    fields = {k: v for k, v in preset.to_dict().items() if k != "grade"}
    return {
        **fields,
        "grade": preset.grade or "",
        "grade_intensity": preset.grade_intensity,
    }


def sync_styles(model: Any = StyleRow, *, reset: bool = False) -> list[str]:
    """Add the file's presets missing from the table (``reset``: overwrite
    every one of them with the file's version). ``model`` lets a data
    migration pass its historical model. The keys written."""
    written = []
    for position, (key, preset) in enumerate(default_styles().items()):
        fields = {**row_fields(preset), "position": position}
        if reset:
            model.objects.update_or_create(key=key, defaults=fields)
        else:
            _, created = model.objects.get_or_create(key=key, defaults=fields)
            if not created:
                continue
        written.append(key)
    return written


def preset_of(row: StyleRow) -> StylePreset:
    """The planner's preset from a row; StyleError names a bad field."""
    data = {
        "name": row.name,
        "description": row.description,
        "prompt": row.prompt,
        "negative": row.negative,
        "vocabulary": row.vocabulary,
        "grade": (
            {"preset": row.grade, "intensity": row.grade_intensity}
            if row.grade
            else None
        ),
        "transitions": row.transitions,
        "motion": row.motion,
        "moves": row.moves,
    }
    return _preset_from_dict(row.key, data)


def style_keys() -> list[str]:
    return list(StyleRow.objects.filter(enabled=True).values_list("key", flat=True))


def style_choices() -> list[tuple[str, str]]:
    rows = StyleRow.objects.filter(enabled=True).values_list("key", "name")
    return list(rows) or [(k, p.name) for k, p in default_styles().items()]


def get_style(key: str) -> StylePreset:
    """The enabled preset ``key`` (the file's, while the table is empty)."""
    row = StyleRow.objects.filter(key=key, enabled=True).first()
    if row is not None:
        try:
            return preset_of(row)
        except StyleError as exc:
            raise UnknownStyle(f"the style {key!r} is misconfigured: {exc}") from exc
    if not StyleRow.objects.exists() and key in default_styles():
        return default_styles()[key]
    choices = ", ".join(k for k, _ in style_choices())
    raise UnknownStyle(f"unknown style {key!r}; choose one of: {choices}")


def check_style(key: str) -> str:
    get_style(key)
    return key
