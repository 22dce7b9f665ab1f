"""REST API of batches: many renders submitted at once, as JSON or as a CSV
(a multipart ``file`` field, or a raw ``text/csv`` body), followed and
cancelled together."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import BaseParser, FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from media_jobs import control
from media_jobs.access import jobs_for_user
from media_jobs.api import PRIORITY_NAMES, JobSerializer, prefetch_job_details
from media_jobs.models import Batch, Job

from .batches import (
    MAX_CSV_BYTES,
    BatchError,
    decode_batch_csv,
    parse_batch_csv,
    parse_batch_json,
    submit_batch,
)


class CSVTextParser(BaseParser):
    """A raw ``text/csv`` body, as bytes; decoding and the size limit are
    ``batches``'s (one byte past the limit is read, enough to refuse it)."""

    media_type = "text/csv"

    def parse(
        self, stream: Any, media_type: Any = None, parser_context: Any = None
    ) -> bytes:
        if stream is None:
            return b""
        return stream.read(MAX_CSV_BYTES + 1)


# --- serializers ------------------------------------------------------------------


class BatchRenderSerializer(serializers.Serializer):
    """One render of a JSON batch; the project's settings fill what is left out."""

    project = serializers.IntegerField()
    preset = serializers.CharField(required=False)
    format = serializers.CharField(required=False)
    duration = serializers.FloatField(required=False)
    style = serializers.CharField(required=False)
    model = serializers.CharField(required=False)
    priority = serializers.ChoiceField(
        choices=list(PRIORITY_NAMES.values()), required=False
    )


class BatchCreateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    renders = BatchRenderSerializer(many=True)


class BatchCSVUploadSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    file = serializers.FileField(
        help_text="A CSV with a header row: project (required), preset, format, "
        "duration, style, model, priority."
    )


class RowErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(
        allow_null=True, help_text="The spreadsheet row (the header is row 1)."
    )
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class BatchErrorsSerializer(serializers.Serializer):
    errors = RowErrorSerializer(many=True)


class StatusCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    queued = serializers.IntegerField()
    running = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()


class BatchSerializer(serializers.ModelSerializer):
    job_ids = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Batch
        fields = ["id", "name", "created_at", "job_ids", "counts", "progress"]
        read_only_fields = fields

    @extend_schema_field({"type": "array", "items": {"type": "integer"}})
    def get_job_ids(self, batch: Batch) -> list[int]:
        return [job.pk for job in batch.jobs.all()]

    @extend_schema_field(StatusCountsSerializer)
    def get_counts(self, batch: Batch) -> dict[str, int]:
        jobs = list(batch.jobs.all())
        counts = Counter(job.status for job in jobs)
        return {"total": len(jobs)} | {s.value: counts.get(s, 0) for s in Job.Status}

    @extend_schema_field(OpenApiTypes.FLOAT)
    def get_progress(self, batch: Batch) -> float:
        """The mean progress of its jobs, 0 to 1."""
        jobs = list(batch.jobs.all())
        if not jobs:
            return 0.0
        return round(sum(job.progress for job in jobs) / len(jobs), 4)


class BatchDetailSerializer(BatchSerializer):
    jobs = JobSerializer(many=True, read_only=True)

    class Meta(BatchSerializer.Meta):
        fields = [*BatchSerializer.Meta.fields, "jobs"]
        read_only_fields = fields


class BatchCancelSerializer(BatchDetailSerializer):
    cancelled = serializers.ListField(
        child=serializers.IntegerField(), help_text="Ids of the jobs cancelled now."
    )

    class Meta(BatchDetailSerializer.Meta):
        fields = [*BatchDetailSerializer.Meta.fields, "cancelled"]
        read_only_fields = fields


# --- viewset ----------------------------------------------------------------------


CSV_EXAMPLE = "project,preset,format,duration,priority\n12,shorts,mp4,30,high\n"


@extend_schema_view(
    list=extend_schema(summary="Your batches"),
    retrieve=extend_schema(summary="A batch and its jobs"),
)
class BatchViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    parser_classes = [JSONParser, MultiPartParser, FormParser, CSVTextParser]

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return BatchSerializer if self.action == "list" else BatchDetailSerializer

    def get_queryset(self) -> Any:
        user = self.request.user
        if not user.is_authenticated:
            return Batch.objects.none()
        jobs = jobs_for_user(user).order_by("created_at", "id")
        if self.action == "list":
            jobs = jobs.only("id", "batch_id", "status", "progress")
        else:
            jobs = prefetch_job_details(jobs)
        return Batch.objects.filter(owner=user).prefetch_related(
            Prefetch("jobs", queryset=jobs)
        )

    def _detail(self, batch: Batch, code: int, **extra: Any) -> Response:
        fresh = self.get_queryset().get(pk=batch.pk)
        data = BatchDetailSerializer(fresh, context=self.get_serializer_context()).data
        return Response({**data, **extra}, status=code)

    @extend_schema(
        summary="Submit a batch of renders",
        description="JSON (`name`, `renders`), a multipart upload (`name`, "
        "`file`), or a raw `text/csv` body (the name from `?name=`). Every row "
        "is checked first; one bad row refuses the whole batch and lists "
        "every bad row.",
        request={
            "application/json": BatchCreateSerializer,
            "multipart/form-data": BatchCSVUploadSerializer,
            "text/csv": {"type": "string"},
        },
        responses={
            201: BatchDetailSerializer,
            400: OpenApiResponse(
                BatchErrorsSerializer, description="Rows that cannot be rendered."
            ),
        },
        examples=[
            OpenApiExample(
                "CSV", value=CSV_EXAMPLE, media_type="text/csv", request_only=True
            )
        ],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            name, requests = self._requests(request)
            batch = submit_batch(request.user, name, requests)
        except BatchError as exc:
            return Response({"errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
        return self._detail(batch, status.HTTP_201_CREATED)

    def _requests(self, request: Request) -> tuple[str, list[Any]]:
        data = request.data
        user = request.user
        if isinstance(data, bytes):  # text/csv
            name = request.query_params.get("name", "")
            return name, parse_batch_csv(decode_batch_csv(data), user)
        upload = request.FILES.get("file")
        if upload is not None:
            if upload.size > MAX_CSV_BYTES:
                # Refused before reading it into memory.
                decode_batch_csv(b"\0" * (MAX_CSV_BYTES + 1))
            name = str(data.get("name") or upload.name or "")
            return name, parse_batch_csv(
                decode_batch_csv(upload.read(MAX_CSV_BYTES + 1)), user
            )
        if isinstance(data, list):  # a bare JSON list of renders
            return "", parse_batch_json(data, user)
        if "renders" not in data:
            raise BatchError(
                [
                    {
                        "row": None,
                        "field": "renders",
                        "message": "send a JSON list of renders, or a CSV file",
                    }
                ]
            )
        name = data.get("name") or ""
        if not isinstance(name, str):
            raise BatchError(
                [{"row": None, "field": "name", "message": "must be text"}]
            )
        return name, parse_batch_json(data["renders"], user)

    @extend_schema(
        summary="Cancel every queued or running job of the batch",
        request=None,
        responses={202: BatchCancelSerializer},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        batch = self.get_object()
        cancelled = []
        for job in batch.jobs.all():
            if job.status not in Job.CANCELLABLE_STATUSES:
                continue
            try:
                control.cancel(job)
            except control.JobActionRefused:
                continue  # it finished meanwhile
            cancelled.append(job.pk)
        return self._detail(batch, status.HTTP_202_ACCEPTED, cancelled=cancelled)
