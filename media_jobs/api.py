"""REST API of jobs: what a script polls after starting a render, and the
owner's actions on a job (cancel, retry, make one scene again)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from . import control
from .access import jobs_for_user
from .models import Job, JobStage, TaskRun


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

# A priority is shown and given by its name: "low", "normal", "high", "urgent".
PRIORITY_NAMES = {int(choice): choice.name.lower() for choice in Job.Priority}


class JobStageSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobStage
        fields = [
            "name",
            "status",
            "progress",
            "message",
            "cached",
            "started_at",
            "finished_at",
            "seconds",
        ]
        read_only_fields = fields


class TaskRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = TaskRun
        fields = [
            "key",
            "stage",
            "scene_index",
            "status",
            "queue",
            "worker",
            "deliveries",
            "cached",
            "progress",
            "seconds",
            "queued_at",
            "started_at",
            "finished_at",
            "error",
        ]
        read_only_fields = fields


@extend_schema_field(
    {"type": "string", "enum": list(PRIORITY_NAMES.values()), "readOnly": True}
)
class PriorityNameField(serializers.Field):
    def to_representation(self, value: int) -> str:
        return PRIORITY_NAMES.get(int(value), str(value))


class JobSerializer(serializers.ModelSerializer):
    scenes = serializers.SerializerMethodField()
    render = serializers.SerializerMethodField()
    priority = PriorityNameField(read_only=True)
    stages = JobStageSerializer(many=True, read_only=True)
    tasks = TaskRunSerializer(source="task_runs", many=True, read_only=True)

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
            "priority",
            "batch",
            "parent",
            "attempts",
            "dispatched_at",
            "scenes",
            "stages",
            "tasks",
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


def prefetch_job_details(jobs: Any) -> Any:
    """What ``JobSerializer`` reads, fetched in a fixed number of queries."""
    return jobs.select_related("render").prefetch_related(
        "scenes",
        Prefetch("stages", queryset=JobStage.objects.order_by("position", "id")),
        Prefetch("task_runs", queryset=TaskRun.objects.order_by("scene_index", "id")),
    )


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class RerenderSceneSerializer(serializers.Serializer):
    """What changes in the scene made again; everything is optional (a new
    random seed is drawn when ``seed`` is not given)."""

    image = serializers.IntegerField(
        required=False, help_text="Id of a photo of the same project."
    )
    move = serializers.CharField(required=False, help_text="A camera move.")
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)


JOB_ACTION_RESPONSES = {
    202: JobSerializer,
    409: OpenApiResponse(
        ErrorSerializer, description="The job is not in a state for this action."
    ),
}


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
        jobs = prefetch_job_details(jobs_for_user(self.request.user))
        if self.action == "list":
            project = self.request.query_params.get("project")
            if project and project.isdigit():
                jobs = jobs.filter(project_id=int(project))
            wanted = self.request.query_params.get("status")
            if wanted:
                jobs = jobs.filter(status=wanted)
        return jobs

    def _job_response(self, job: Job, code: int = status.HTTP_202_ACCEPTED) -> Response:
        # Fetched again: the action changed the job and its stages after the
        # prefetch of ``get_object``.
        fresh = self.get_queryset().get(pk=job.pk)
        return Response(self.get_serializer(fresh).data, status=code)

    @extend_schema(
        summary="Cancel a queued or running job",
        request=None,
        responses=JOB_ACTION_RESPONSES,
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        try:
            control.cancel(job)
        except control.JobActionRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return self._job_response(job)

    @extend_schema(
        summary="Queue a failed or cancelled job again",
        description="Finished stages and scenes are kept; only what is left runs.",
        request=None,
        responses=JOB_ACTION_RESPONSES,
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        try:
            control.retry(job)
        except control.JobActionRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return self._job_response(job)

    @extend_schema(
        summary="Make one scene of a finished render again",
        description="A new render job (its ``parent`` is this one) that makes "
        "scene ``index`` again with a new seed, and a new photo or move when "
        "given, and reuses every other scene.",
        request=RerenderSceneSerializer,
        parameters=[OpenApiParameter("index", int, OpenApiParameter.PATH)],
        responses={
            202: JobSerializer,
            400: OpenApiResponse(
                ErrorSerializer, description="The job or the request cannot be used."
            ),
            404: OpenApiResponse(
                ErrorSerializer, description="No such job, scene or photo."
            ),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"scenes/(?P<index>\d+)/rerender",
        parser_classes=[JSONParser, FormParser, MultiPartParser],
    )
    def rerender(
        self, request: Request, pk: str | None = None, index: str = "0"
    ) -> Response:
        # Imported here: media_jobs does not depend on projects at import time
        # (projects builds on media_jobs, not the other way round).
        from projects.access import assets_for_user
        from projects.pipeline import RenderNotReady, SceneNotFound, rerender_scene

        job = self.get_object()
        body = RerenderSceneSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        image = None
        if "image" in body.validated_data:
            image = (
                assets_for_user(request.user)
                .filter(pk=body.validated_data["image"])
                .first()
            )
            if image is None:
                raise NotFound("No such photo.")
        try:
            child = rerender_scene(
                job,
                int(index),
                image=image,
                move=body.validated_data.get("move"),
                seed=body.validated_data.get("seed"),
            )
        except SceneNotFound as exc:
            raise NotFound(str(exc)) from exc
        except RenderNotReady as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return self._job_response(child)
