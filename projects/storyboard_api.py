"""REST API of a project's storyboard: read it, plan it again (a job), read
and edit one scene (``storyboards.edit_shot``).

The project comes from ``projects.access``, so another user's project is a
404 here exactly as on the pages.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from media_jobs.api import ErrorSerializer, JobSerializer
from workers.storyboard.prompts import STAGES

from .access import projects_for_user
from .api import OutputFormatField
from .models import PRESET_CHOICES, Project, Shot, Storyboard
from .pipeline import RenderInProgress, RenderNotReady, start_storyboard
from .storyboards import MAX_SEED, StoryboardError, edit_shot
from .styles import UnknownStyle, check_style

# --- serializers ------------------------------------------------------------------


class ShotSerializer(serializers.ModelSerializer):
    start = serializers.SerializerMethodField(help_text="Seconds.")
    end = serializers.SerializerMethodField(help_text="Seconds.")

    class Meta:
        model = Shot
        fields = [
            "index",
            "start",
            "end",
            "start_frame",
            "end_frame",
            "beats",
            "section",
            "energy",
            "image",
            "end_image",
            "features_character",
            "move",
            "motion",
            "transition",
            "transition_frames",
            "reason",
            "grade",
            "grade_intensity",
            "model",
            "seed",
            "script_heading",
            "script_text",
            "stages",
            "stage_sources",
            "user_stages",
            "stages_off",
            "prompt",
            "negative_prompt",
            "edited",
        ]
        read_only_fields = fields

    def get_start(self, shot: Shot) -> float:
        return round(shot.start(shot.storyboard.fps), 4)

    def get_end(self, shot: Shot) -> float:
        return round(shot.end(shot.storyboard.fps), 4)


class StoryboardSerializer(serializers.ModelSerializer):
    shots = ShotSerializer(many=True, read_only=True)

    class Meta:
        model = Storyboard
        fields = [
            "project",
            "style",
            "duration",
            "preset",
            "width",
            "height",
            "fps",
            "output_format",
            "model",
            "seed",
            "music",
            "character",
            "notes",
            "llm",
            "version",
            "planned_at",
            "updated_at",
            "shots",
        ]
        read_only_fields = fields


class PlanRequestSerializer(serializers.Serializer):
    """Render settings the storyboard is planned for; absent: the project's."""

    style = serializers.CharField(
        max_length=40, required=False, help_text="Key of an enabled style preset."
    )
    duration = serializers.FloatField(min_value=2.0, max_value=3600.0, required=False)
    preset = serializers.ChoiceField(choices=PRESET_CHOICES, required=False)
    fps = serializers.ChoiceField(choices=[24, 25, 30, 50, 60], required=False)
    format = OutputFormatField(required=False)
    width = serializers.IntegerField(min_value=16, max_value=7680, required=False)
    height = serializers.IntegerField(min_value=16, max_value=4320, required=False)
    seed = serializers.IntegerField(min_value=0, max_value=MAX_SEED, required=False)
    model = serializers.CharField(
        max_length=100,
        required=False,
        help_text="Key of an enabled model of the registry (default: chosen).",
    )

    def validate_style(self, value: str) -> str:
        try:
            return check_style(value)
        except UnknownStyle as exc:
            raise serializers.ValidationError(str(exc)) from exc


class ShotEditSerializer(serializers.Serializer):
    """Any of a scene's editable parts (``storyboards.EDITABLE``); checked
    for sense by ``edit_shot``, whose refusal is a 400 saying why."""

    user_stages = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        help_text=f"Your text per prompt stage ({', '.join(STAGES)}).",
    )
    stages_off = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Stages switched off."
    )
    model = serializers.CharField(max_length=100, required=False)
    seed = serializers.IntegerField(min_value=0, max_value=MAX_SEED, required=False)
    image = serializers.IntegerField(required=False, help_text="A photo's asset id.")
    end_image = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="Last frame for a video model; null: none.",
    )
    motion = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    beats = serializers.FloatField(required=False, help_text="The scene's length.")
    move = serializers.CharField(max_length=20, required=False)
    transition = serializers.CharField(max_length=30, required=False)
    transition_beats = serializers.FloatField(min_value=0.0, required=False)
    grade = serializers.CharField(
        max_length=40, required=False, allow_blank=True, help_text="Blank: none."
    )
    grade_intensity = serializers.FloatField(
        min_value=0.0, max_value=1.0, required=False
    )
    features_character = serializers.BooleanField(required=False)


# --- views ------------------------------------------------------------------------


def _project(request: Request, pk: int) -> Project:
    return get_object_or_404(projects_for_user(request.user), pk=pk)


def _board(project: Project) -> Storyboard:
    board = Storyboard.objects.filter(project=project).first()
    if board is None:
        raise NotFound("This project has no storyboard yet: plan one.")
    return board


class StoryboardView(APIView):
    @extend_schema(
        summary="The project's storyboard with its scenes",
        responses={200: StoryboardSerializer, 404: ErrorSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        board = _board(_project(request, pk))
        return Response(StoryboardSerializer(board).data)


class StoryboardPlanView(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        summary="Plan the storyboard (again), in a job",
        request=PlanRequestSerializer,
        responses={
            202: JobSerializer,
            400: OpenApiResponse(
                ErrorSerializer, description="The project is not ready."
            ),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        project = _project(request, pk)
        overrides = PlanRequestSerializer(data=request.data)
        overrides.is_valid(raise_exception=True)
        try:
            job = start_storyboard(project, **overrides.validated_data)
        except (RenderNotReady, RenderInProgress) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ShotView(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def _shot(self, request: Request, pk: int, index: int) -> Shot:
        board = _board(_project(request, pk))
        shot = board.shots.select_related("storyboard__project").filter(index=index)
        found = shot.first()
        if found is None:
            raise NotFound(f"The storyboard has no scene {index}.")
        return found

    @extend_schema(
        summary="One scene of the storyboard",
        responses={200: ShotSerializer, 404: ErrorSerializer},
    )
    def get(self, request: Request, pk: int, index: int) -> Response:
        return Response(ShotSerializer(self._shot(request, pk, index)).data)

    @extend_schema(
        summary="Edit one scene (the project turns to Advanced mode)",
        description="Returns every scene the edit changed: a new length moves"
        " the next scene's start too.",
        request=ShotEditSerializer,
        responses={
            200: ShotSerializer(many=True),
            400: OpenApiResponse(ErrorSerializer, description="The edit is refused."),
            404: ErrorSerializer,
        },
    )
    def patch(self, request: Request, pk: int, index: int) -> Response:
        shot = self._shot(request, pk, index)
        edit = ShotEditSerializer(data=request.data, partial=True)
        edit.is_valid(raise_exception=True)
        changes: dict[str, Any] = dict(edit.validated_data)
        try:
            changed = edit_shot(shot, changes)
        except StoryboardError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(ShotSerializer(changed, many=True).data)
