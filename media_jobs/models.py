"""Jobs: one row per piece of work a user asked for, created before any task is
sent, so the page, the API and the websocket can show it from the first moment."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class JobQuerySet(models.QuerySet["Job"]):
    def for_user(self, user: object) -> JobQuerySet:
        return self.filter(owner=user)


class Job(models.Model):
    class Kind(models.TextChoices):
        RENDER = "render", "Render"
        ANALYZE = "analyze", "Analyze music"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)

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
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

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
