"""Jobs: one row per piece of work a user asked for, created before any task is
sent, so the page, the API and the websocket can show it from the first moment."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class JobQuerySet(models.QuerySet["Job"]):
    def for_user(self, user: object) -> JobQuerySet:
        return self.filter(owner=user)


class Batch(models.Model):
    """Renders submitted together (the batch API, a CSV of renders)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batches"
    )
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return self.name or f"Batch {self.pk}"


class Job(models.Model):
    class Kind(models.TextChoices):
        RENDER = "render", "Render"
        ANALYZE = "analyze", "Analyze music"
        CHARACTER = "character", "Register character"
        CAST = "cast", "Find the character"
        STORYBOARD = "storyboard", "Plan the storyboard"
        MODEL_PULL = "model_pull", "Pull a model into the store"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        # Scenes that failed the consistency gate wait for their owner; the
        # job holds no slot and runs nothing until they are decided.
        REVIEW = "review", "Awaiting review"

    class Priority(models.IntegerChoices):
        LOW = 0, "Low"
        NORMAL = 1, "Normal"
        HIGH = 2, "High"
        URGENT = 3, "Urgent"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
    # What a cancel can stop: the active jobs and those waiting for a review.
    CANCELLABLE_STATUSES = (Status.QUEUED, Status.RUNNING, Status.REVIEW)

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs"
    )
    # A string reference: media_jobs knows projects only through the database.
    project = models.ForeignKey(
        "projects.Project",
        on_delete=models.CASCADE,
        related_name="jobs",
        null=True,
        blank=True,
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    progress = models.FloatField(default=0.0)
    stage = models.CharField(max_length=40, blank=True)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)
    task_id = models.CharField(max_length=255, blank=True)
    # Ids of the fanned-out tasks (one per scene), for revoking them.
    task_ids = models.JSONField(default=list, blank=True)
    priority = models.PositiveSmallIntegerField(
        choices=Priority.choices, default=Priority.NORMAL
    )
    batch = models.ForeignKey(
        Batch, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs"
    )
    # The job this one re-renders part of (one scene changed, the rest cached).
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # When the scheduler sent the job's canvas to the farm; a queued job
    # without it waits for a slot (its owner's limit, the farm's window).
    dispatched_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(
        default=1, help_text="1 + the times a failed job was retried."
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "dispatched_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status not in self.ACTIVE_STATUSES

    @property
    def percent(self) -> int:
        return round(self.progress * 100)

    @property
    def group_name(self) -> str:
        return group_name(self.pk)


def group_name(job_id: int) -> str:
    """The Channels group that carries one job's progress."""
    return f"job_{job_id}"


class RunStatus(models.TextChoices):
    """States of a stage and of a task record."""

    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class JobStage(models.Model):
    """One stage of a job (analyze, plan, scenes, assemble): its state, its
    share of the progress, and its timings."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="stages")
    name = models.CharField(max_length=40)
    position = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(
        max_length=20, choices=RunStatus.choices, default=RunStatus.PENDING
    )
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True)
    cached = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["job", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "name"], name="stage_unique_per_job")
        ]

    def __str__(self) -> str:
        return f"{self.name} of job {self.job_id} ({self.status})"


class TaskRun(models.Model):
    """One task of a job (a stage task, or one scene): where and how it ran.

    One row per task, updated by each delivery: ``deliveries`` counts how
    often a worker started it (a worker lost mid-task redelivers it), and a
    task is given up after ``STUDIO_MAX_DELIVERIES``.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="task_runs")
    stage = models.CharField(max_length=40)
    key = models.CharField(max_length=80, help_text="'analyze', 'scene-3', …")
    scene_index = models.PositiveIntegerField(null=True, blank=True)
    task_name = models.CharField(max_length=100)
    task_id = models.CharField(max_length=255, blank=True)
    queue = models.CharField(max_length=40, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    model_key = models.CharField(max_length=100, blank=True)
    status = models.CharField(
        max_length=20, choices=RunStatus.choices, default=RunStatus.PENDING
    )
    progress = models.FloatField(default=0.0)
    cached = models.BooleanField(default=False)
    deliveries = models.PositiveIntegerField(default=0)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="Run time.")
    error = models.TextField(blank=True)
    # Moved by every start, progress report and end: the task's heartbeat.
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["job", "scene_index", "id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "key"], name="task_unique_per_job")
        ]
        indexes = [models.Index(fields=["finished_at"])]

    def __str__(self) -> str:
        return f"{self.key} of job {self.job_id} ({self.status})"


class ModelSpec(models.Model):
    """A model (or engine) a task can run, and what a machine needs for it.

    The registry's first fields: a scene task is routed by ``vram_gb``, and
    every cached output names ``key`` and ``revision``, so raising the
    revision makes exactly the outputs of this model be computed again.
    """

    class Kind(models.TextChoices):
        SCENE = "scene", "Scene (still or clip)"
        IMAGE = "image", "Image"
        VIDEO = "video", "Video"
        MUSIC = "music", "Music"
        SPEECH = "speech", "Speech"
        TRANSCRIPTION = "transcription", "Transcription"
        EMOTION = "emotion", "Speech emotion"
        FACES = "faces", "Faces"
        LLM = "llm", "Storyboard LLM"

    class Location(models.TextChoices):
        LOCAL = "local", "Local weights (model store)"
        API = "api", "Cloud API"
        EMBEDDED = "embedded", "Embedded (no weights to fetch)"

    class Bundle(models.TextChoices):
        ESSENTIAL = "essential", "Essential"
        RECOMMENDED = "recommended", "Recommended"
        ALL = "all", "All"

    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    engine = models.CharField(
        max_length=100, help_text="The scene engine that runs this model."
    )
    revision = models.CharField(max_length=100)
    vram_gb = models.FloatField(
        default=0.0, help_text="GPU memory it needs; 0 runs on the CPU queue."
    )
    enabled = models.BooleanField(default=True)
    # From the studio's plan (workers/modelstore/registry.yaml): what runs
    # it, where its weights come from, what it may do, how good and fast.
    provider = models.CharField(max_length=40, blank=True)
    # A model added by hand (an engine of STUDIO_SCENE_ENGINES) brings its
    # own weights: nothing for the store to fetch.
    location = models.CharField(
        max_length=20, choices=Location.choices, default=Location.EMBEDDED
    )
    repo = models.CharField(
        max_length=200, blank=True, help_text="Hugging Face repository (owner/name)."
    )
    files = models.JSONField(
        default=list, blank=True, help_text="Allow-patterns of the files to fetch."
    )
    cpu = models.BooleanField(default=False, help_text="Can also run on a CPU.")
    params = models.JSONField(default=dict, blank=True)
    quality = models.PositiveSmallIntegerField(
        default=0, help_text="1..10 (0: not rated): chosen first for quality."
    )
    speed = models.PositiveSmallIntegerField(
        default=0, help_text="1..10 (0: not rated): chosen first for speed."
    )
    api_key_setting = models.CharField(
        max_length=60, blank=True, help_text="Setting holding an API model's key."
    )
    bundle = models.CharField(max_length=20, choices=Bundle.choices, default=Bundle.ALL)
    licence = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        verbose_name = "model"

    def __str__(self) -> str:
        return f"{self.key}@{self.revision}"


class CacheEntry(models.Model):
    """An output keyed by the fingerprint of everything that made it: inputs,
    parameters, model key and revision, engine version."""

    class Kind(models.TextChoices):
        SCENE = "scene", "Scene"
        RENDER = "render", "Render"
        FACES = "faces", "Faces in a photo"
        CHECK = "check", "Consistency check"
        PROMPTS = "prompts", "Storyboard prompts from the LLM"

    fingerprint = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, db_index=True)
    model_key = models.CharField(max_length=100, blank=True, db_index=True)
    model_revision = models.CharField(max_length=100, blank=True)
    engine_version = models.CharField(max_length=100, blank=True)
    files = models.JSONField(
        default=list, blank=True, help_text="Storage names of the output."
    )
    result = models.JSONField(default=dict, blank=True)
    size = models.BigIntegerField(default=0)
    seconds = models.FloatField(default=0.0, help_text="What computing it took.")
    hits = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    last_hit_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "cache entries"

    def __str__(self) -> str:
        return f"{self.kind} {self.fingerprint[:12]}"


class Webhook(models.Model):
    """An integration's URL that receives an HMAC-signed POST on job state
    changes (n8n, scripts)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks"
    )
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=128)
    events = models.JSONField(
        default=list, blank=True, help_text="Event names; empty means all."
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    webhook = models.ForeignKey(
        Webhook, on_delete=models.CASCADE, related_name="deliveries"
    )
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, null=True, related_name="webhook_deliveries"
    )
    event = models.CharField(max_length=40)
    payload = models.JSONField(default=dict)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook}"


class WorkerHeartbeat(models.Model):
    """What a worker process last said about itself: its queues, its device
    and free GPU memory, and the models it holds loaded. The planner takes
    a queue as served while some worker on it has reported lately."""

    name = models.CharField(max_length=200, unique=True, help_text="node#pid")
    hostname = models.CharField(max_length=200)
    queues = models.JSONField(default=list)
    device = models.CharField(max_length=200, default="cpu")
    vram_total_gb = models.FloatField(default=0.0)
    vram_free_gb = models.FloatField(null=True, blank=True)
    loaded = models.JSONField(default=list, blank=True)
    # The models in this worker's own model store (registry keys).
    installed = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["hostname", "name"]

    def __str__(self) -> str:
        return self.name
