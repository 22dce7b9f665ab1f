"""Admin of projects and their material, for staff.

Assets and renders are made by the upload validation and the pipeline, never
by hand, so their stored files are read-only here and cannot be added.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from workers.storyboard.styles import StyleError

from .models import Asset, AudioAnalysis, Project, Render, Scene, StylePreset
from .styles import preset_of


class AssetInline(admin.TabularInline):
    model = Asset
    extra = 0
    fields = ["original_name", "kind", "mime", "size", "created_at"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "owner",
        "status",
        "style",
        "preset",
        "output_format",
        "updated_at",
    ]
    list_filter = ["status", "style", "preset", "output_format"]
    search_fields = ["title", "owner__username"]
    raw_id_fields = ["owner"]
    date_hierarchy = "created_at"
    inlines = [AssetInline]

    def get_readonly_fields(
        self, request: HttpRequest, obj: Project | None = None
    ) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # Access to a project's assets, jobs and renders follows its owner;
            # moving it to another user would hand all of that over, while
            # denormalized owner copies (Asset.owner, Job.owner) stayed behind.
            readonly.append("owner")
        return readonly


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = [
        "original_name",
        "kind",
        "mime",
        "size",
        "project",
        "owner",
        "created_at",
    ]
    list_filter = ["kind", "mime"]
    search_fields = ["original_name", "sha256", "project__title", "owner__username"]
    readonly_fields = [
        # An asset belongs to its project (and so to the project's owner);
        # moving it would give another user the file.
        "project",
        "owner",
        "file",
        "kind",
        "mime",
        "extension",
        "sha256",
        "size",
        "width",
        "height",
        "duration",
        "sample_rate",
        "channels",
        "codec",
        "metadata",
        "created_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Adding bypasses the upload validation; files come in through the pages or API.
        return False


@admin.register(AudioAnalysis)
class AudioAnalysisAdmin(admin.ModelAdmin):
    list_display = [
        "sha256",
        "engine_version",
        "bpm",
        "bpm_confidence",
        "duration",
        "created_at",
    ]
    list_filter = ["engine_version"]
    search_fields = ["sha256"]
    readonly_fields = ["sha256", "engine_version", "created_at"]


@admin.register(Scene)
class SceneAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "project",
        "index",
        "start",
        "end",
        "move",
        "transition",
        "transition_frames",
        "status",
        "cached",
    ]
    list_filter = ["status", "cached", "move", "transition"]
    search_fields = ["project__title", "fingerprint"]
    raw_id_fields = ["project", "job", "image"]
    readonly_fields = ["fingerprint", "clip", "seconds"]


@admin.register(Render)
class RenderAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "project",
        "preset",
        "output_format",
        "width",
        "height",
        "duration",
        "size",
        "created_at",
    ]
    list_filter = ["output_format", "preset"]
    search_fields = ["project__title", "project__owner__username"]
    raw_id_fields = ["project", "job"]
    readonly_fields = ["file", "thumbnail", "size", "manifest", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class StylePresetForm(forms.ModelForm):
    class Meta:
        model = StylePreset
        fields = [
            "key", "name", "description", "prompt", "negative", "vocabulary",
            "grade", "grade_intensity", "transitions", "motion", "moves",
            "enabled", "position",
        ]  # fmt: skip

    def clean(self) -> dict:
        """The planner's own checks (grades, transitions, moves, vocabulary),
        so a preset saved here is one it can use."""
        data = super().clean() or {}
        row = StylePreset(**data)
        try:
            preset_of(row)
        except StyleError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data


@admin.register(StylePreset)
class StylePresetAdmin(admin.ModelAdmin):
    form = StylePresetForm
    list_display = ["name", "key", "grade", "motion", "enabled", "position"]
    list_editable = ["enabled", "position"]
    search_fields = ["key", "name", "description"]
