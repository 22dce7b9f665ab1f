"""Admin of jobs, for staff: what ran, for whom, how far it got and why it failed."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "stage",
        "progress_percent",
        "owner",
        "project",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "kind", "stage"]
    search_fields = ["=id", "owner__username", "project__title", "task_id", "error"]
    date_hierarchy = "created_at"
    # The state machine (media_jobs.lifecycle) owns these; editing them by hand
    # would race the workers. Owner and project are fixed when the job is made:
    # who may see a job follows them.
    readonly_fields = [
        "owner",
        "project",
        "status",
        "progress",
        "stage",
        "message",
        "error",
        "params",
        "task_id",
        "task_ids",
        "created_at",
        "started_at",
        "finished_at",
        "updated_at",
    ]

    @admin.display(description="progress")
    def progress_percent(self, job: Job) -> str:
        return f"{job.percent}%"

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A job without its Celery canvas would sit queued forever.
        return False
