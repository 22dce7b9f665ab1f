"""Projects and what they are made of: uploaded assets, the music analysis,
the planned scenes and the finished renders."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from workers.assembly.presets import PRESETS

PRESET_CHOICES = [(name, name) for name in PRESETS]
FORMAT_CHOICES = [
    ("mp4", "MP4 (H.264 + AAC)"),
    ("webm", "WebM (VP9 + Opus)"),
    ("gif", "GIF"),
]


class ProjectQuerySet(models.QuerySet["Project"]):
    def for_user(self, user: object) -> ProjectQuerySet:
        return self.filter(owner=user)


class Project(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        RENDERING = "rendering", "Rendering"
        RENDERED = "rendered", "Rendered"
        FAILED = "failed", "Failed"
        REVIEW = "review", "Awaiting review"

    class ReviewPolicy(models.TextChoices):
        HOLD = "hold", "Hold the render until I review the flagged scenes"
        CONTINUE = "continue", "Finish the render; I review the flagged scenes after"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects"
    )

    class Mode(models.TextChoices):
        QUICK = "quick", "Quick: the studio plans every scene"
        ADVANCED = "advanced", "Advanced: I edit the storyboard"

    title = models.CharField(max_length=200)
    # A StylePreset key (the presets live in the database, edited in admin).
    style = models.CharField(max_length=40, default="cinematic")
    mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.QUICK)
    target_duration = models.FloatField(
        default=30.0,
        validators=[MinValueValidator(2.0), MaxValueValidator(3600.0)],
        help_text="Seconds of video to render (the song is cut to this).",
    )
    preset = models.CharField(max_length=20, choices=PRESET_CHOICES, default="youtube")
    output_format = models.CharField(
        max_length=10, choices=FORMAT_CHOICES, default="mp4"
    )
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.DRAFT
    )
    # Who the video is about: every scene showing them is checked against
    # their identity. Quick mode (auto_character) finds them in the photos.
    character = models.ForeignKey(
        "characters.Character",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="projects",
    )
    auto_character = models.BooleanField(
        default=True,
        help_text="Without a character chosen, find the person in the photos.",
    )
    review_policy = models.CharField(
        max_length=20, choices=ReviewPolicy.choices, default=ReviewPolicy.HOLD
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return self.title

    def images(self) -> models.QuerySet[Asset]:
        return self.assets.filter(kind=Asset.Kind.IMAGE).order_by("created_at", "id")

    def music(self) -> Asset | None:
        """The song to cut to: the most recently uploaded audio asset."""
        return (
            self.assets.filter(kind=Asset.Kind.AUDIO)
            .order_by("-created_at", "-id")
            .first()
        )

    def script(self) -> Asset | None:
        """The script the storyboard follows: the latest document uploaded."""
        return (
            self.assets.filter(kind=Asset.Kind.DOCUMENT)
            .order_by("-created_at", "-id")
            .first()
        )


def asset_upload_to(instance: Asset, filename: str) -> str:
    # The user's name is never part of the stored path; see Asset.original_name.
    return f"assets/{instance.owner_id}/{uuid.uuid4().hex}{instance.extension}"


class Asset(models.Model):
    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        AUDIO = "audio", "Audio"
        DOCUMENT = "document", "Document"

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="assets"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assets"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    file = models.FileField(upload_to=asset_upload_to, max_length=300)
    original_name = models.CharField(max_length=255)
    mime = models.CharField(max_length=100)
    extension = models.CharField(max_length=10)
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.BigIntegerField()
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True)
    sample_rate = models.PositiveIntegerField(null=True, blank=True)
    channels = models.PositiveSmallIntegerField(null=True, blank=True)
    codec = models.CharField(max_length=40, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "sha256"], name="asset_unique_content_per_project"
            )
        ]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.kind})"


class AudioAnalysis(models.Model):
    """Timing of a song, keyed by the audio's content hash and the engine version,
    so the same song is analysed once whoever uploads it."""

    sha256 = models.CharField(max_length=64)
    engine_version = models.CharField(max_length=40)
    duration = models.FloatField()
    bpm = models.FloatField()
    bpm_confidence = models.FloatField()
    beats = models.JSONField(default=list)
    downbeats = models.JSONField(default=list)
    onsets = models.JSONField(default=list)
    sections = models.JSONField(default=list)
    energy = models.JSONField(default=dict)
    meter = models.PositiveSmallIntegerField(default=4, help_text="Beats per bar.")
    tempo_curve = models.JSONField(default=list)
    loudness_lufs = models.FloatField(null=True, blank=True)
    # Min and max of the waveform per picture column, so the picture is drawn
    # without decoding the song again.
    peaks = models.JSONField(default=list)
    seconds = models.FloatField(null=True, blank=True, help_text="Engine time.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "audio analyses"
        constraints = [
            models.UniqueConstraint(
                fields=["sha256", "engine_version"], name="analysis_unique_per_content"
            )
        ]

    def __str__(self) -> str:
        return f"{self.sha256[:12]} {self.bpm:.1f} BPM"

    def to_contract(self) -> dict[str, object]:
        """The ``analyze_audio --json`` shape (DESIGN.md), then the extras."""
        return {
            "duration": self.duration,
            "bpm": self.bpm,
            "bpm_confidence": self.bpm_confidence,
            "beats": self.beats,
            "downbeats": self.downbeats,
            "onsets": self.onsets,
            "sections": self.sections,
            "energy": self.energy,
            "meter": self.meter,
            "tempo_curve": self.tempo_curve,
            "loudness_lufs": self.loudness_lufs,
        }


class Scene(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Review(models.TextChoices):
        """The consistency gate's verdict on a scene of a character."""

        NONE = "", "Not checked"
        PASSED = "passed", "Passed"
        FLAGGED = "flagged", "Flagged for review"
        APPROVED = "approved", "Approved by its owner"
        REDONE = "redone", "Made again in a new render"

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="scenes"
    )
    job = models.ForeignKey(
        "media_jobs.Job", on_delete=models.CASCADE, related_name="scenes"
    )
    index = models.PositiveIntegerField()
    start = models.FloatField(help_text="Seconds; the frame-exact cut time.")
    end = models.FloatField()
    start_frame = models.PositiveIntegerField()
    end_frame = models.PositiveIntegerField()
    image = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="scenes")
    move = models.CharField(max_length=20)
    # Where zooms and pushes close in, as fractions of the photo: the
    # character's face when the photo shows it, else the centre.
    focus_x = models.FloatField(default=0.5)
    focus_y = models.FloatField(default=0.5)
    # The registry's key (media_jobs.ModelSpec) of the model that makes the
    # scene; its VRAM need picks the queue, its revision is in the fingerprint.
    model = models.CharField(max_length=100, default="photo")
    seed = models.BigIntegerField(default=0)
    # From the storyboard: what the model is asked for, how much the camera
    # (or a video model) moves, the colour grade, and the last frame for a
    # model that animates between two pictures.
    prompt = models.TextField(blank=True)
    negative_prompt = models.TextField(blank=True)
    motion = models.FloatField(default=0.5)
    grade = models.CharField(max_length=40, blank=True)
    grade_intensity = models.FloatField(default=0.0)
    end_image = models.ForeignKey(
        Asset, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # How this scene joins the NEXT one (the last scene's is "cut", 0): a
    # ``workers.assembly.transitions.TRANSITIONS`` name and its length in
    # frames, centred on the next scene's ``start_frame``.
    transition = models.CharField(max_length=30, default="cut")
    transition_frames = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING
    )
    fingerprint = models.CharField(max_length=64, blank=True)
    clip = models.CharField(
        max_length=300,
        blank=True,
        help_text="Storage name of the scene's source (a photo, or a clip).",
    )
    thumbnail = models.CharField(
        max_length=300, blank=True, help_text="Storage name of its preview."
    )
    cached = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="Engine time.")
    # The character the scene shows (checked by the consistency gate), and
    # the gate's findings: the scene's score (its worst sampled frame), the
    # verdict, the generation attempts, and per-frame scores in ``gate``.
    character = models.ForeignKey(
        "characters.Character",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="scenes",
    )
    consistency = models.FloatField(null=True, blank=True)
    review = models.CharField(
        max_length=20, choices=Review.choices, default=Review.NONE, blank=True
    )
    tries = models.PositiveSmallIntegerField(default=0)
    gate = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "index"], name="scene_unique_index_per_job"
            )
        ]

    def __str__(self) -> str:
        return f"Scene {self.index} of job {self.job_id}"

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def focus(self) -> tuple[float, float]:
        return (self.focus_x, self.focus_y)


class Render(models.Model):
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="renders"
    )
    job = models.OneToOneField(
        "media_jobs.Job", on_delete=models.CASCADE, related_name="render"
    )
    file = models.CharField(max_length=300, help_text="Storage name of the video.")
    thumbnail = models.CharField(max_length=300, blank=True)
    output_format = models.CharField(max_length=10)
    preset = models.CharField(max_length=20)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    fps = models.PositiveIntegerField()
    duration = models.FloatField()
    size = models.BigIntegerField()
    manifest = models.JSONField(default=dict)
    fingerprint = models.CharField(max_length=64, blank=True, db_index=True)
    cached = models.BooleanField(
        default=False, help_text="Served from an identical earlier render."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Render {self.pk} of {self.project}"


class StylePreset(models.Model):
    """A look for a video (``workers.storyboard.styles``), editable in admin;
    seeded from ``workers/storyboard/styles.yaml``."""

    key = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    prompt = models.JSONField(default=list, help_text="The style's DNA: phrases.")
    negative = models.JSONField(default=list, blank=True)
    vocabulary = models.JSONField(
        default=dict,
        blank=True,
        help_text="Lists of words under settings, lighting, palette, texture, camera.",
    )
    grade = models.CharField(max_length=40, blank=True, help_text="Blank: no grade.")
    grade_intensity = models.FloatField(
        default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    transitions = models.JSONField(default=list)
    motion = models.FloatField(
        default=0.5, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    moves = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "key"]

    def __str__(self) -> str:
        return self.name


class Storyboard(models.Model):
    """A project's planned scenes (``Shot``) and the render settings they
    were planned for. Quick mode plans it again for every render; in
    Advanced mode the user edits it and renders use it as it stands."""

    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, related_name="storyboard"
    )
    style = models.CharField(max_length=40)
    duration = models.FloatField(help_text="Seconds, as planned (whole frames).")
    preset = models.CharField(max_length=20, choices=PRESET_CHOICES, default="youtube")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    fps = models.PositiveIntegerField()
    output_format = models.CharField(
        max_length=10, choices=FORMAT_CHOICES, default="mp4"
    )
    model = models.CharField(max_length=100, default="photo")
    seed = models.BigIntegerField(default=0)
    music = models.ForeignKey(
        Asset, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    music_sha256 = models.CharField(max_length=64)
    script_sha256 = models.CharField(max_length=64, blank=True)
    character = models.ForeignKey(
        "characters.Character",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    notes = models.JSONField(default=list, blank=True)
    # The LLM stage: {"used": bool, "note": why not, "model": ...}.
    llm = models.JSONField(default=dict, blank=True)
    version = models.PositiveIntegerField(default=1, help_text="Bumped by each edit.")
    planned_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Storyboard of {self.project}"

    @property
    def frames(self) -> int:
        return round(self.duration * self.fps)


class Shot(models.Model):
    """One planned scene of a storyboard: what a render makes its Scene from."""

    storyboard = models.ForeignKey(
        Storyboard, on_delete=models.CASCADE, related_name="shots"
    )
    index = models.PositiveIntegerField()
    start_frame = models.PositiveIntegerField()
    end_frame = models.PositiveIntegerField()
    beats = models.FloatField(help_text="Length in beats of the song.")
    section = models.CharField(max_length=40, blank=True)
    energy = models.CharField(max_length=10, blank=True)
    image = models.ForeignKey(
        Asset, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    end_image = models.ForeignKey(
        Asset, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    features_character = models.BooleanField(default=True)
    move = models.CharField(max_length=20)
    motion = models.FloatField(
        default=0.5, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    transition = models.CharField(max_length=30, default="cut")
    transition_frames = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=200, blank=True)
    grade = models.CharField(max_length=40, blank=True)
    grade_intensity = models.FloatField(default=0.0)
    model = models.CharField(max_length=100, default="photo")
    seed = models.BigIntegerField(default=0)
    script_heading = models.CharField(max_length=300, blank=True)
    script_text = models.TextField(blank=True)
    # The prompt pipeline: each stage's text and where it came from
    # (template, llm, user, off); the user's own stage text; stages off.
    stages = models.JSONField(default=dict, blank=True)
    stage_sources = models.JSONField(default=dict, blank=True)
    user_stages = models.JSONField(default=dict, blank=True)
    stages_off = models.JSONField(default=list, blank=True)
    prompt = models.TextField(blank=True)
    negative_prompt = models.TextField(blank=True)
    # Changed by its owner since the last render that used it: only such
    # scenes are made again (the others' fingerprints are unchanged).
    edited = models.BooleanField(default=False)

    class Meta:
        ordering = ["storyboard", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["storyboard", "index"], name="shot_unique_index"
            )
        ]

    def __str__(self) -> str:
        return f"Shot {self.index} of {self.storyboard}"

    def start(self, fps: int) -> float:
        return self.start_frame / fps

    def end(self, fps: int) -> float:
        return self.end_frame / fps
