"""REST API of the review queue: the user's flagged scenes with what the
consistency check saw, and the three decisions (``projects.review``).

Another user's scene is a 404, as on the pages; a decision the scene is not
in a state for is a 409 saying why.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from media_jobs.api import ErrorSerializer, JobSerializer
from media_jobs.models import Job

from . import review
from .access import scenes_for_user
from .models import Asset, Scene
from .review_views import MAX_SEED


class FrameScoreSerializer(serializers.Serializer):
    frame = serializers.IntegerField(required=False)
    time = serializers.FloatField(required=False, help_text="Seconds into the scene.")
    faces = serializers.IntegerField(
        required=False, help_text="Faces big enough to judge."
    )
    score = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="Best similarity to the character; null: no face.",
    )
    box = serializers.ListField(
        child=serializers.FloatField(), allow_null=True, required=False
    )
    sampled = serializers.BooleanField(
        required=False, help_text="False: looked at to find where the person changes."
    )


class AttemptSerializer(serializers.Serializer):
    seed = serializers.IntegerField(required=False)
    score = serializers.FloatField(required=False, allow_null=True)
    passed = serializers.BooleanField(required=False)


class GateSerializer(serializers.Serializer):
    """What the consistency check found on the attempt kept (a dict, so
    every field is optional to the serializer)."""

    passed = serializers.BooleanField(required=False)
    score = serializers.FloatField(required=False, allow_null=True)
    presence = serializers.FloatField(
        required=False, help_text="Share of the sampled frames showing the character."
    )
    threshold = serializers.FloatField(required=False)
    frames = FrameScoreSerializer(many=True, required=False)
    failure = FrameScoreSerializer(
        required=False,
        allow_null=True,
        help_text="The first frame showing someone else.",
    )
    reason = serializers.CharField(required=False)
    attempts = AttemptSerializer(many=True, required=False)


@extend_schema_field(
    {
        "type": "string",
        "enum": [value for value in Scene.Review.values if value],
        "readOnly": True,
    }
)
class ReviewField(serializers.CharField):
    """The verdict as an inline enum (scenes here have all been checked)."""


class ReviewSceneSerializer(serializers.ModelSerializer):
    project_title = serializers.CharField(source="project.title", read_only=True)
    job_status = serializers.CharField(
        source="job.status",
        read_only=True,
        help_text="`review`: the render waits for this decision.",
    )
    character_name = serializers.CharField(
        source="character.name", read_only=True, allow_null=True, default=None
    )
    review = ReviewField(read_only=True)
    gate = GateSerializer(read_only=True)
    preview_url = serializers.SerializerMethodField(
        help_text="The scene's preview (session login); null when none."
    )

    class Meta:
        model = Scene
        fields = [
            "id",
            "project",
            "project_title",
            "job",
            "job_status",
            "index",
            "start",
            "end",
            "image",
            "seed",
            "character",
            "character_name",
            "consistency",
            "review",
            "tries",
            "gate",
            "preview_url",
        ]
        read_only_fields = fields

    def get_preview_url(self, scene: Scene) -> str | None:
        if not scene.thumbnail:
            return None
        return reverse("jobs:scene_preview", args=[scene.pk])


class RegenerateSerializer(serializers.Serializer):
    seed = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_SEED,
        help_text="The new seed; a random one when not given.",
    )


class ReplaceSerializer(serializers.Serializer):
    image = serializers.IntegerField(help_text="Id of a photo of the same project.")


DECISION_RESPONSES = {
    202: OpenApiResponse(
        JobSerializer,
        description="The render that makes the scene again: the held render "
        "itself, or a new one when the render had finished.",
    ),
    400: OpenApiResponse(ErrorSerializer, description="The request is wrong."),
    409: OpenApiResponse(
        ErrorSerializer, description="The scene is not waiting for a review."
    ),
}


@extend_schema_view(
    list=extend_schema(summary="Your scenes waiting for a review"),
    retrieve=extend_schema(summary="A scene waiting for a review"),
)
class ReviewViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Scenes that failed the consistency check on every attempt. Their id
    is the scene's id."""

    serializer_class = ReviewSceneSerializer

    def get_queryset(self) -> Any:
        if self.action in ("list", "retrieve"):
            return review.review_queue(self.request.user)
        # A decision looks at any of the user's scenes, so one that is not
        # waiting is a 409 with the reason rather than a bare 404.
        return scenes_for_user(self.request.user).select_related(
            "project", "job", "character"
        )

    def _refused(self, exc: Exception, code: int) -> Response:
        return Response({"detail": str(exc)}, status=code)

    def _job(self, job: Job) -> Response:
        return Response(
            JobSerializer(Job.objects.get(pk=job.pk)).data,
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(
        summary="Keep a flagged scene as it is",
        description="A held render whose last flagged scene this was is "
        "queued again to assemble its video.",
        request=None,
        responses={
            200: ReviewSceneSerializer,
            409: OpenApiResponse(
                ErrorSerializer, description="The scene is not waiting for a review."
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        scene = self.get_object()
        try:
            review.approve(scene)
        except review.ReviewRefused as exc:
            return self._refused(exc, status.HTTP_409_CONFLICT)
        fresh = self.get_queryset().get(pk=scene.pk)
        return Response(ReviewSceneSerializer(fresh).data)

    @extend_schema(
        summary="Make a flagged scene again with a new seed",
        request=RegenerateSerializer,
        responses=DECISION_RESPONSES,
    )
    @action(
        detail=True,
        methods=["post"],
        parser_classes=[JSONParser, FormParser, MultiPartParser],
    )
    def regenerate(self, request: Request, pk: str | None = None) -> Response:
        scene = self.get_object()
        body = RegenerateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            job = review.regenerate(scene, seed=body.validated_data.get("seed"))
        except review.ReviewRefused as exc:
            return self._refused(exc, status.HTTP_409_CONFLICT)
        return self._job(job)

    @extend_schema(
        summary="Make a flagged scene again from another photo",
        request=ReplaceSerializer,
        responses=DECISION_RESPONSES,
    )
    @action(
        detail=True,
        methods=["post"],
        parser_classes=[JSONParser, FormParser, MultiPartParser],
    )
    def replace(self, request: Request, pk: str | None = None) -> Response:
        scene = self.get_object()
        body = ReplaceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        image = scene.project.assets.filter(
            pk=body.validated_data["image"], kind=Asset.Kind.IMAGE
        ).first()
        if image is None:
            return Response(
                {"detail": "The project has no such photo."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            job = review.replace(scene, image)
        except review.ReviewRefused as exc:
            return self._refused(exc, status.HTTP_409_CONFLICT)
        return self._job(job)
