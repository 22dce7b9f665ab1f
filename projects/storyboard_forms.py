"""Forms of Quick mode, planning a storyboard and editing one of its scenes."""

from __future__ import annotations

from typing import Any

from django import forms

from media_jobs.models import ModelSpec
from studio_site.forms import MultipleFileField, MultipleFileInput
from workers.assembly.grading import GRADES
from workers.assembly.motion import MOVES
from workers.assembly.transitions import TRANSITIONS
from workers.storyboard.prompts import STAGES

from .models import FORMAT_CHOICES, PRESET_CHOICES, AudioAnalysis, Project, Shot
from .storyboards import MAX_SEED
from .styles import DEFAULT_STYLE, style_choices

FPS_CHOICES = [(str(n), f"{n} fps") for n in (24, 25, 30, 50, 60)]
# Kinds of registry entries that can make a scene (not music, speech, faces).
SCENE_MODEL_KINDS = (ModelSpec.Kind.SCENE, ModelSpec.Kind.IMAGE, ModelSpec.Kind.VIDEO)


class QuickForm(forms.Form):
    """Quick mode: the material and two choices; the studio plans the rest."""

    title = forms.CharField(max_length=200, required=False)
    photos = MultipleFileField(
        label="Photos",
        error_messages={"required": "Choose at least one photo."},
        widget=MultipleFileInput(attrs={"accept": "image/*"}),
    )
    song = forms.FileField(
        label="Song",
        error_messages={"required": "Choose a song."},
        widget=forms.ClearableFileInput(attrs={"accept": "audio/*"}),
    )
    script = forms.FileField(
        label="Script (optional)",
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.md,.txt"}),
    )
    style = forms.ChoiceField(
        choices=style_choices, widget=forms.RadioSelect, initial=DEFAULT_STYLE
    )
    duration = forms.FloatField(
        label="Duration (seconds)",
        min_value=2.0,
        max_value=3600.0,
        initial=30.0,
        widget=forms.NumberInput(attrs={"step": "0.5"}),
    )


class PlanForm(forms.Form):
    """The render settings a storyboard is planned for; blank: the project's."""

    style = forms.ChoiceField(choices=style_choices, required=False)
    duration = forms.FloatField(
        label="Duration (seconds)", min_value=2.0, max_value=3600.0, required=False
    )
    preset = forms.ChoiceField(
        choices=[("", "project's")] + PRESET_CHOICES, required=False
    )
    fps = forms.TypedChoiceField(
        choices=[("", "preset's")] + FPS_CHOICES,
        coerce=int,
        empty_value=None,
        required=False,
    )
    format = forms.ChoiceField(
        choices=[("", "project's")] + FORMAT_CHOICES, required=False
    )
    width = forms.IntegerField(min_value=16, max_value=7680, required=False)
    height = forms.IntegerField(min_value=16, max_value=4320, required=False)
    seed = forms.IntegerField(min_value=0, max_value=MAX_SEED, required=False)

    @classmethod
    def for_project(cls, project: Project) -> PlanForm:
        board = getattr(project, "storyboard", None)
        initial: dict[str, Any] = {
            "style": project.style,
            "duration": project.target_duration,
            "preset": project.preset,
            "format": project.output_format,
        }
        if board is not None:
            initial.update(
                style=board.style,
                duration=board.duration,
                preset=board.preset,
                format=board.output_format,
                fps=str(board.fps),
                seed=board.seed,
            )
        return cls(initial=initial)

    def overrides(self) -> dict[str, Any]:
        """The settings given, as ``start_storyboard`` takes them."""
        return {k: v for k, v in self.cleaned_data.items() if v not in (None, "")}


def beat_seconds(shot: Shot) -> float:
    """One beat of the storyboard's song, in seconds (120 BPM when unknown)."""
    analysis = (
        AudioAnalysis.objects.filter(sha256=shot.storyboard.music_sha256)
        .order_by("-created_at")
        .first()
    )
    bpm = analysis.bpm if analysis and analysis.bpm > 0 else 120.0
    return 60.0 / bpm


def model_choices(current: str) -> list[tuple[str, str]]:
    specs = ModelSpec.objects.filter(enabled=True, kind__in=SCENE_MODEL_KINDS)
    choices = [(s.key, f"{s.name} ({s.key})") for s in specs.order_by("key")]
    if current and current not in {key for key, _ in choices}:
        choices.insert(0, (current, current))
    return choices


class ShotEditForm(forms.Form):
    """Every editable part of one scene (``storyboards.EDITABLE``); the
    prompt stages are made per stage in ``__init__``."""

    model = forms.ChoiceField()
    seed = forms.IntegerField(min_value=0, max_value=MAX_SEED)
    image = forms.TypedChoiceField(label="Photo", coerce=int)
    end_image = forms.TypedChoiceField(
        label="End keyframe (video models)",
        coerce=int,
        empty_value=None,
        required=False,
    )
    motion = forms.FloatField(
        min_value=0.0,
        max_value=1.0,
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        help_text="0: still; 1: twice the move's usual distance.",
    )
    beats = forms.FloatField(
        label="Duration (beats)",
        min_value=0.01,
        max_value=256,
        widget=forms.NumberInput(attrs={"step": "any"}),
    )
    move = forms.ChoiceField(
        label="Camera move", choices=[(m, m.replace("_", " ")) for m in MOVES]
    )
    transition = forms.ChoiceField(
        label="Transition to the next scene",
        choices=[(name, name.replace("_", " ")) for name in TRANSITIONS],
    )
    transition_beats = forms.FloatField(
        label="Transition length (beats)",
        min_value=0.0,
        max_value=64,
        widget=forms.NumberInput(attrs={"step": "any"}),
    )
    grade = forms.ChoiceField(
        choices=[("", "none")] + [(name, name.replace("_", " ")) for name in GRADES],
        required=False,
    )
    grade_intensity = forms.FloatField(
        min_value=0.0, max_value=1.0, widget=forms.NumberInput(attrs={"step": "0.05"})
    )
    features_character = forms.BooleanField(label="Shows the character", required=False)

    def __init__(self, *args: Any, shot: Shot, **kwargs: Any) -> None:
        self.shot = shot
        self.beat_s = beat_seconds(shot)
        fps = shot.storyboard.fps
        kwargs.setdefault("initial", self._initial(fps))
        super().__init__(*args, **kwargs)
        photos = [(a.pk, a.original_name) for a in shot.storyboard.project.images()]
        self.fields["image"].choices = photos
        self.fields["end_image"].choices = [("", "none")] + photos
        self.fields["model"].choices = model_choices(shot.model)
        for stage in STAGES:
            self.fields[f"stage_{stage}"] = forms.CharField(
                label=f"{stage.capitalize()} stage",
                required=False,
                widget=forms.Textarea(
                    attrs={"rows": 2, "placeholder": shot.stages.get(stage, "")}
                ),
            )
            self.fields[f"off_{stage}"] = forms.BooleanField(
                label=f"Switch the {stage} stage off", required=False
            )

    def _initial(self, fps: int) -> dict[str, Any]:
        shot = self.shot
        initial: dict[str, Any] = {
            "model": shot.model,
            "seed": shot.seed,
            "image": shot.image_id,
            "end_image": shot.end_image_id or "",
            "motion": shot.motion,
            "beats": shot.beats,
            "move": shot.move,
            "transition": shot.transition,
            "transition_beats": round(shot.transition_frames / fps / self.beat_s, 2),
            "grade": shot.grade,
            "grade_intensity": shot.grade_intensity,
            "features_character": shot.features_character,
        }
        for stage in STAGES:
            initial[f"stage_{stage}"] = shot.user_stages.get(stage, "")
            initial[f"off_{stage}"] = stage in shot.stages_off
        return initial

    def stage_fields(
        self,
    ) -> list[tuple[str, forms.BoundField, forms.BoundField, str]]:
        """(stage, its text field, its off switch, where its text comes from:
        template, llm, user or off), in the pipeline's order."""
        sources = self.shot.stage_sources
        return [
            (s, self[f"stage_{s}"], self[f"off_{s}"], sources.get(s, "template"))
            for s in STAGES
        ]

    def other_fields(self) -> list[forms.BoundField]:
        return [
            field for field in self if not field.name.startswith(("stage_", "off_"))
        ]

    def changes(self) -> dict[str, Any]:
        """Only what differs from the scene as it stands: ``edit_shot`` marks
        the scene edited, so an untouched field must not count."""
        data = self.cleaned_data
        shot = self.shot
        changes: dict[str, Any] = {}
        texts = {
            s: " ".join(data[f"stage_{s}"].split())
            for s in STAGES
            if data[f"stage_{s}"].strip()
        }
        if texts != shot.user_stages:
            changes["user_stages"] = texts
        off = [s for s in STAGES if data[f"off_{s}"]]
        if set(off) != set(shot.stages_off):
            changes["stages_off"] = off
        plain = {
            "model": shot.model,
            "seed": shot.seed,
            "image": shot.image_id,
            "end_image": shot.end_image_id,
            "move": shot.move,
            "transition": shot.transition,
            "grade": shot.grade or "",
            "features_character": shot.features_character,
        }
        for key, before in plain.items():
            if data[key] != before:
                changes[key] = data[key]
        for key in ("motion", "beats", "grade_intensity", "transition_beats"):
            before = self.initial[key]
            if round(float(data[key]), 4) != round(float(before), 4):
                changes[key] = data[key]
        return changes
