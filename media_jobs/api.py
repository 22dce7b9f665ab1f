"""REST API of jobs (read-only): what a script polls after starting a render."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import serializers, viewsets

from .access import jobs_for_user
from .models import Job


class SceneSummarySerializer(serializers.Serializer):
    total = serializers.IntegerField()
    pending = serializers.IntegerField()
    running = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField()
    cached = serializers.IntegerField(
        help_text="Scenes whose clip came from the cache."
    )


SCENE_STATUSES = ("pending", "running", "done", "failed")


class JobSerializer(serializers.ModelSerializer):
    scenes = serializers.SerializerMethodField()
    render = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "project",
            "kind",
            "status",
            "progress",
            "stage",
            "message",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "task_id",
            "scenes",
            "render",
        ]
        read_only_fields = fields

    @extend_schema_field(SceneSummarySerializer)
    def get_scenes(self, job: Job) -> dict[str, int]:
        # ``job.scenes`` is prefetched by the viewset; counting in Python keeps
        # the list at a fixed number of queries.
        scenes = list(job.scenes.all())
        counts = Counter(scene.status for scene in scenes)
        summary = {"total": len(scenes)}
        summary.update({name: counts.get(name, 0) for name in SCENE_STATUSES})
        summary["cached"] = sum(1 for scene in scenes if scene.cached)
        return summary

    @extend_schema_field(OpenApiTypes.INT)
    def get_render(self, job: Job) -> int | None:
        """The id of the finished render, or null."""
        try:
            return job.render.pk
        except ObjectDoesNotExist:
            return None


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter(
                "project", int, description="Only the jobs of this project."
            ),
            OpenApiParameter("status", str, enum=[s.value for s in Job.Status]),
        ]
    )
)
class JobViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = JobSerializer

    def get_queryset(self) -> Any:
        jobs = (
            jobs_for_user(self.request.user)
            .select_related("render")
            .prefetch_related("scenes")
        )
        if self.action == "list":
            project = self.request.query_params.get("project")
            if project and project.isdigit():
                jobs = jobs.filter(project_id=int(project))
            wanted = self.request.query_params.get("status")
            if wanted:
                jobs = jobs.filter(status=wanted)
        return jobs
