"""Output presets: the frame size and rate each delivery target expects."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OutputPreset:
    name: str
    width: int
    height: int
    fps: int

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


PRESETS: dict[str, OutputPreset] = {
    p.name: p
    for p in (
        OutputPreset("youtube", 1920, 1080, 30),
        OutputPreset("youtube4k", 3840, 2160, 30),
        OutputPreset("shorts", 1080, 1920, 30),
        OutputPreset("square", 1080, 1080, 30),
        OutputPreset("portrait", 1080, 1350, 30),
        OutputPreset("preview", 640, 360, 30),
    )
}


def get_preset(name: str) -> OutputPreset:
    """The preset called ``name`` (case-insensitive); ValueError lists the choices."""
    try:
        return PRESETS[name.strip().lower()]
    except KeyError:
        choices = ", ".join(PRESETS)
        raise ValueError(
            f"Unknown output preset {name!r}; choose one of: {choices}."
        ) from None
