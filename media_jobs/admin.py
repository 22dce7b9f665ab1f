"""Admin of jobs and the worker farm, for staff: what ran, for whom, where,
how far it got and why it failed; the model registry; the output cache; the
webhooks and their deliveries.

The state machine (media_jobs.lifecycle), the workers and the scheduler own
the records of jobs, stages and task runs, so those are read-only here:
editing them by hand would race the farm.
"""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html

from workers.modelstore.store import StoreError, verify

from . import cache
from .model_jobs import PullRefused, start_pull
from .models import (
    Batch,
    CacheEntry,
    Job,
    JobStage,
    ModelSpec,
    TaskRun,
    Webhook,
    WebhookDelivery,
    WorkerHeartbeat,
)
from .queues import NoQueueForModel, queue_for_vram
from .registry import state as model_state
from .registry import store_path


class ReadOnlyInline(admin.TabularInline):
    """Rows shown for reading: nothing added, changed or deleted here."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records the farm writes: viewable by staff, never edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- jobs --------------------------------------------------------------------


class JobStageInline(ReadOnlyInline):
    model = JobStage
    fields = [
        "position",
        "name",
        "status",
        "progress",
        "cached",
        "message",
        "started_at",
        "finished_at",
        "seconds",
    ]
    readonly_fields = fields


class TaskRunInline(ReadOnlyInline):
    model = TaskRun
    fields = [
        "key",
        "stage",
        "task_name",
        "model_key",
        "queue",
        "worker",
        "status",
        "progress",
        "cached",
        "deliveries",
        "queued_at",
        "started_at",
        "seconds",
        "error",
    ]
    readonly_fields = fields
    show_change_link = True


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "stage",
        "progress_percent",
        "priority",
        "owner",
        "project",
        "batch",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "kind", "stage", "priority", "batch"]
    list_select_related = ["owner", "project", "batch"]
    search_fields = ["=id", "owner__username", "project__title", "task_id", "error"]
    date_hierarchy = "created_at"
    inlines = [JobStageInline, TaskRunInline]
    # The state machine (media_jobs.lifecycle) owns these; editing them by hand
    # would race the workers. Owner and project are fixed when the job is made:
    # who may see a job follows them. The scheduler owns dispatched_at and the
    # retries owns attempts. Priority stays editable: raising a waiting job's
    # priority is how staff let it jump the farm's queue.
    readonly_fields = [
        "owner",
        "project",
        "batch",
        "parent",
        "status",
        "progress",
        "stage",
        "message",
        "error",
        "params",
        "task_id",
        "task_ids",
        "attempts",
        "dispatched_at",
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


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyAdmin):
    list_display = [
        "job",
        "key",
        "status",
        "queue",
        "worker",
        "deliveries",
        "cached",
        "seconds",
        "finished_at",
    ]
    list_filter = ["status", "queue", "stage", "cached"]
    list_select_related = ["job"]
    search_fields = ["=job__id", "key", "task_id", "worker", "model_key", "error"]
    date_hierarchy = "queued_at"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A job's record of its tasks goes with the job.
        return False


class BatchJobInline(ReadOnlyInline):
    model = Job
    fk_name = "batch"
    fields = ["kind", "status", "priority", "progress", "project", "created_at"]
    readonly_fields = fields
    show_change_link = True


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "job_count", "created_at"]
    list_select_related = ["owner"]
    search_fields = ["name", "owner__username"]
    date_hierarchy = "created_at"
    readonly_fields = ["owner", "created_at"]
    inlines = [BatchJobInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Batch]:
        return super().get_queryset(request).annotate(job_count=Count("jobs"))

    @admin.display(description="jobs", ordering="job_count")
    def job_count(self, batch: Batch) -> int:
        return batch.job_count  # type: ignore[attr-defined]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Batches are made with their jobs (the batch API); an empty one
        # made here would hold nothing.
        return False


# --- the model registry ------------------------------------------------------


class ModelSpecForm(forms.ModelForm):
    class Meta:
        model = ModelSpec
        fields = [
            "key", "name", "kind", "engine", "revision", "vram_gb", "enabled",
            "provider", "location", "repo", "files", "cpu", "params", "quality",
            "speed", "api_key_setting", "bundle", "licence",
        ]  # fmt: skip

    # Fields a hand-added model (an engine of STUDIO_SCENE_ENGINES) may leave
    # out: it brings its own weights and is not rated.
    DEFAULTS: dict[str, Any] = {
        "location": ModelSpec.Location.EMBEDDED,
        "bundle": ModelSpec.Bundle.ALL,
        "quality": 0,
        "speed": 0,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in self.DEFAULTS:
            if name in self.fields:
                self.fields[name].required = False

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name, default in self.DEFAULTS.items():
            if data.get(name) in (None, ""):
                data[name] = default
        return data

    def clean_vram_gb(self) -> float:
        vram = self.cleaned_data["vram_gb"]
        if vram is not None and vram < 0:
            raise forms.ValidationError("GPU memory cannot be negative.")
        try:
            queue_for_vram(vram or 0)
        except NoQueueForModel as error:
            # No worker could ever take its tasks.
            raise forms.ValidationError(f"No GPU queue fits: {error}.") from error
        return vram


def _entries_of(*, current: bool) -> Subquery:
    """Cache entries made by a spec's model, at its current revision or not."""
    entries = CacheEntry.objects.filter(model_key=OuterRef("key"))
    if current:
        entries = entries.filter(model_revision=OuterRef("revision"))
    else:
        entries = entries.exclude(model_revision=OuterRef("revision"))
    counted = entries.order_by().values("model_key").annotate(n=Count("id")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


@admin.register(ModelSpec)
class ModelSpecAdmin(admin.ModelAdmin):
    form = ModelSpecForm
    list_display = [
        "key",
        "name",
        "kind",
        "state",
        "location",
        "bundle",
        "revision",
        "vram_gb",
        "queue",
        "quality",
        "speed",
        "enabled",
        "cache_entries",
        "stale_cache_entries",
        "updated_at",
    ]
    list_filter = ["kind", "location", "bundle", "engine", "enabled"]
    list_editable = ["enabled"]
    search_fields = ["key", "name", "engine", "repo"]
    actions = ["pull_models", "verify_models"]

    @admin.display(description="state")
    def state(self, spec: ModelSpec) -> str:
        """In this host's model store, or what an API model needs."""
        return model_state(spec)

    @admin.action(
        description="Pull the selected models into the model store",
        permissions=["change"],
    )
    def pull_models(self, request: HttpRequest, queryset: QuerySet[ModelSpec]) -> None:
        for spec in queryset:
            try:
                job = start_pull(spec, request.user)
            except PullRefused as exc:
                self.message_user(request, str(exc), messages.WARNING)
                continue
            link = reverse("jobs:detail", args=[job.pk])
            self.message_user(
                request,
                format_html(
                    '{}: pulling, <a href="{}">job #{}</a>', spec.key, link, job.pk
                ),
            )

    @admin.action(
        description="Verify the selected models' files (sizes, hashes)",
        permissions=["change"],
    )
    def verify_models(
        self, request: HttpRequest, queryset: QuerySet[ModelSpec]
    ) -> None:
        for spec in queryset:
            try:
                problems = verify(store_path(), spec.key)
            except StoreError as exc:
                self.message_user(request, f"{spec.key}: {exc}", messages.WARNING)
                continue
            if problems:
                listed = "; ".join(f"{p.path}: {p.kind}" for p in problems[:5])
                self.message_user(request, f"{spec.key}: {listed}", messages.ERROR)
            else:
                self.message_user(request, f"{spec.key}: sound")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelSpec]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                current_entries=_entries_of(current=True),
                stale_entries=_entries_of(current=False),
            )
        )

    def get_readonly_fields(
        self, request: HttpRequest, obj: ModelSpec | None = None
    ) -> list[str]:
        readonly = ["queue", "cache_entries", "stale_cache_entries", "updated_at"]
        if obj is not None:
            # Cache entries and scene records name the key; the kind and the
            # engine decide what its outputs are, so changing them without a
            # new key would pass old outputs off as the new model's. A new
            # revision is the way to make outputs be computed again.
            readonly = ["key", "kind", "engine", *readonly]
        return readonly

    @admin.display(description="queue")
    def queue(self, spec: ModelSpec) -> str:
        try:
            return queue_for_vram(spec.vram_gb)
        except NoQueueForModel:
            return f"none (needs {spec.vram_gb:g} GB)"

    @admin.display(description="cache entries", ordering="current_entries")
    def cache_entries(self, spec: ModelSpec) -> int:
        """Entries made by this model at its current revision."""
        value = getattr(spec, "current_entries", None)
        if value is None:  # the add form: no annotated row
            return 0
        return value

    @admin.display(description="old-revision entries", ordering="stale_entries")
    def stale_cache_entries(self, spec: ModelSpec) -> int:
        """Entries of earlier revisions: what the cache purge would remove."""
        value = getattr(spec, "stale_entries", None)
        if value is None:
            return 0
        return value


# --- the cache ---------------------------------------------------------------


@admin.register(CacheEntry)
class CacheEntryAdmin(ReadOnlyAdmin):
    # templates/admin/media_jobs/cacheentry/change_list.html adds the
    # statistics above the list.
    list_display = [
        "kind",
        "short_fingerprint",
        "model_key",
        "model_revision",
        "hits",
        "human_size",
        "seconds",
        "created_at",
        "last_hit_at",
    ]
    list_filter = ["kind", "model_key"]
    search_fields = ["=fingerprint", "fingerprint__startswith", "model_key"]
    date_hierarchy = "created_at"
    actions = ["purge_old_revisions"]

    @admin.display(description="fingerprint", ordering="fingerprint")
    def short_fingerprint(self, entry: CacheEntry) -> str:
        return entry.fingerprint[:12]

    @admin.display(description="size", ordering="size")
    def human_size(self, entry: CacheEntry) -> str:
        return filesizeformat(entry.size)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        statistics = [
            {**row, "size_human": filesizeformat(row["size"])}
            for row in cache.statistics()
        ]
        context = {
            "cache_statistics": statistics,
            "cache_totals": {
                "entries": sum(row["entries"] for row in statistics),
                "hits": sum(row["hits"] for row in statistics),
                "size_human": filesizeformat(sum(row["size"] for row in statistics)),
                "seconds_saved": round(
                    sum(row["seconds_saved"] for row in statistics), 1
                ),
            },
            "cache_stale_count": cache.stale_entries().count(),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)

    @admin.action(
        description="Purge entries of old model revisions",
        permissions=["delete"],
    )
    def purge_old_revisions(
        self, request: HttpRequest, queryset: QuerySet[CacheEntry]
    ) -> None:
        # The purge is of the whole cache, not only the rows ticked: an entry
        # of an old revision can never be hit again, wherever it is listed.
        removed = cache.purge_stale()
        if removed:
            self.message_user(
                request,
                f"Removed {removed} cache "
                f"{'entry' if removed == 1 else 'entries'} of old model revisions.",
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request, "No cache entries of old model revisions.", messages.INFO
            )


# --- webhooks ----------------------------------------------------------------


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["url", "owner", "active", "events", "created_at"]
    list_filter = ["active"]
    list_select_related = ["owner"]
    search_fields = ["url", "owner__username"]
    raw_id_fields = ["owner"]
    # The signing secret is shown on the form (to set up the receiver) and
    # never edited by hand: one is made with the webhook.
    readonly_fields = ["secret", "created_at"]

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any):
        if db_field.name == "url":
            kwargs["assume_scheme"] = "https"  # a receiver without TLS is typed out
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def save_model(
        self, request: HttpRequest, obj: Webhook, form: Any, change: bool
    ) -> None:
        if not obj.secret:
            obj.secret = secrets.token_urlsafe(32)
        super().save_model(request, obj, form, change)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "event",
        "webhook",
        "job",
        "status",
        "attempts",
        "response_code",
        "created_at",
        "delivered_at",
    ]
    list_filter = ["status", "event"]
    list_select_related = ["webhook", "job"]
    search_fields = ["=job__id", "webhook__url", "error"]
    date_hierarchy = "created_at"


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    """The farm's worker processes as they last reported (read-only)."""

    list_display = [
        "name",
        "device",
        "vram_free_gb",
        "vram_total_gb",
        "queue_list",
        "loaded_models",
        "last_seen",
    ]
    search_fields = ["name", "hostname", "device"]
    readonly_fields = [f.name for f in WorkerHeartbeat._meta.fields]

    @admin.display(description="queues")
    def queue_list(self, beat: WorkerHeartbeat) -> str:
        return ", ".join(beat.queues)

    @admin.display(description="loaded models")
    def loaded_models(self, beat: WorkerHeartbeat) -> str:
        return ", ".join(f"{m['key']} ({m['policy']})" for m in beat.loaded) or "none"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: WorkerHeartbeat | None = None
    ) -> bool:
        return False
