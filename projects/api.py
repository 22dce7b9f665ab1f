"""REST API of projects, assets and renders (DRF).

Every queryset comes from ``projects.access``, so another user's object is a
404 here exactly as on the pages.
"""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from characters.access import characters_for_user
from characters.models import Character
from media_jobs.api import PRIORITY_NAMES, ErrorSerializer, JobSerializer
from studio_site.upload_limits import upload_rejections

from .access import assets_for_user, projects_for_user, renders_for_user
from .analysis import analysis_svg, find_analysis
from .models import (
    FORMAT_CHOICES,
    PRESET_CHOICES,
    Asset,
    AudioAnalysis,
    Project,
    Render,
)
from .pipeline import RenderInProgress, RenderNotReady, start_render
from .removal import AssetInUse, ProjectBusy, remove_asset, remove_project
from .responses import (
    render_thumbnail_response,
    render_video_response,
    svg_response,
)
from .styles import UnknownStyle, check_style
from .uploads import UploadRejected, accept_upload

# --- serializers ------------------------------------------------------------------


class OwnCharacterField(serializers.PrimaryKeyRelatedField):
    """A character of the caller's own; another user's id is "does not exist"."""

    def get_queryset(self) -> Any:
        request = self.context.get("request")
        if request is None:
            return Character.objects.none()
        return characters_for_user(request.user)


class ProjectSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.get_username", read_only=True)
    character = OwnCharacterField(
        queryset=Character.objects.all(),
        required=False,
        allow_null=True,
        help_text="Id of one of your characters; null: none (Quick mode, when on).",
    )

    class Meta:
        model = Project
        fields = [
            "id",
            "owner",
            "title",
            "style",
            "mode",
            "target_duration",
            "preset",
            "output_format",
            "character",
            "auto_character",
            "review_policy",
            "status",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["status", "created_at", "updated_at"]

    def validate_style(self, value: str) -> str:
        try:
            return check_style(value)
        except UnknownStyle as exc:
            raise serializers.ValidationError(str(exc)) from exc


class AssetSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="Download URL (session login).")

    class Meta:
        model = Asset
        fields = [
            "id",
            "project",
            "kind",
            "original_name",
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
            "created_at",
            "url",
        ]
        read_only_fields = fields

    def get_url(self, asset: Asset) -> str:
        return reverse("projects:asset_file", args=[asset.pk])


class AssetUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="An image, a song or a script; checked by its content, not its name."
    )


@extend_schema_field(
    {
        "type": "string",
        "enum": [value for value, _label in FORMAT_CHOICES],
        "description": "Container and codecs of the video.",
    }
)
class OutputFormatField(serializers.ChoiceField):
    """The output format as an inline enum: the same choices as the project's
    ``output_format``, which drf-spectacular would otherwise name twice."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=FORMAT_CHOICES, **kwargs)


class RenderRequestSerializer(serializers.Serializer):
    """Optional overrides of the project's settings for this one render."""

    preset = serializers.ChoiceField(choices=PRESET_CHOICES, required=False)
    format = OutputFormatField(required=False)
    duration = serializers.FloatField(min_value=2.0, max_value=3600.0, required=False)
    style = serializers.CharField(
        max_length=40, required=False, help_text="Key of an enabled style preset."
    )

    def validate_style(self, value: str) -> str:
        try:
            return check_style(value)
        except UnknownStyle as exc:
            raise serializers.ValidationError(str(exc)) from exc

    model = serializers.CharField(
        max_length=100,
        required=False,
        help_text="Key of an enabled model of the registry (default: photo).",
    )
    priority = serializers.ChoiceField(
        choices=list(PRIORITY_NAMES.values()),
        required=False,
        help_text="Which waiting render the farm starts first (default: normal).",
    )


class RenderSerializer(serializers.ModelSerializer):
    video_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = Render
        fields = [
            "id",
            "project",
            "job",
            "output_format",
            "preset",
            "width",
            "height",
            "fps",
            "duration",
            "size",
            "created_at",
            "video_url",
            "thumbnail_url",
            "manifest",
        ]
        read_only_fields = fields

    def get_video_url(self, render: Render) -> str:
        return reverse("api:render-video", args=[render.pk])

    def get_thumbnail_url(self, render: Render) -> str | None:
        if not render.thumbnail:
            return None
        return reverse("api:render-thumbnail", args=[render.pk])


class UploadErrorSerializer(serializers.Serializer):
    file = serializers.ListField(child=serializers.CharField())


# --- viewsets ---------------------------------------------------------------------


class PassthroughRenderer(BaseRenderer):
    """Lets a file download pass content negotiation whatever the client accepts.

    It comes after ``JSONRenderer``, so errors (a 404) are still JSON.
    """

    media_type = "*/*"
    format = "binary"

    def render(
        self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None
    ):
        return data


@extend_schema_view(
    list=extend_schema(summary="Your projects"),
    create=extend_schema(summary="Create a project"),
    destroy=extend_schema(
        summary="Delete a project and its files",
        responses={
            204: None,
            409: OpenApiResponse(
                ErrorSerializer, description="A job of the project is under way."
            ),
        },
    ),
)
class ProjectViewSet(viewsets.ModelViewSet):
    serializer_class = ProjectSerializer

    def get_queryset(self):
        return projects_for_user(self.request.user).select_related("owner")

    def perform_create(self, serializer: ProjectSerializer) -> None:
        # The owner is always the caller; an "owner" in the body is ignored.
        serializer.save(owner=self.request.user)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        project = self.get_object()
        try:
            remove_project(project)
        except ProjectBusy as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        methods=["GET"],
        summary="The project's assets",
        responses=AssetSerializer(many=True),
    )
    @extend_schema(
        methods=["POST"],
        summary="Upload one file to the project",
        request={"multipart/form-data": AssetUploadSerializer},
        responses={
            201: AssetSerializer,
            400: OpenApiResponse(
                UploadErrorSerializer, description="The file was rejected."
            ),
        },
    )
    @action(
        detail=True,
        methods=["get", "post"],
        url_path="assets",
        parser_classes=[MultiPartParser, FormParser],
        pagination_class=None,
    )
    def assets(self, request: Request, pk: str | None = None) -> Response:
        project = self.get_object()
        if request.method == "GET":
            assets = project.assets.order_by("created_at", "id")
            return Response(AssetSerializer(assets, many=True).data)
        data = request.data
        # A file the upload handler dropped for its size never reaches ``data``.
        refused = upload_rejections(request)
        if refused:
            return Response(
                {"file": [message for _name, message in refused]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        upload = AssetUploadSerializer(data=data)
        upload.is_valid(raise_exception=True)
        try:
            asset = accept_upload(project, upload.validated_data["file"])
        except UploadRejected as exc:
            return Response({"file": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(AssetSerializer(asset).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Start a render",
        request=RenderRequestSerializer,
        responses={
            202: JobSerializer,
            400: OpenApiResponse(
                ErrorSerializer, description="The project is not ready."
            ),
            409: OpenApiResponse(
                JobSerializer, description="A render is already under way."
            ),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="render",
        parser_classes=[JSONParser, FormParser, MultiPartParser],
    )
    def render(self, request: Request, pk: str | None = None) -> Response:
        project = self.get_object()
        overrides = RenderRequestSerializer(data=request.data)
        overrides.is_valid(raise_exception=True)
        options = dict(overrides.validated_data)
        names = {name: value for value, name in PRIORITY_NAMES.items()}
        priority = names[options.pop("priority", "normal")]
        try:
            # An unknown or disabled model is a RenderNotReady naming it.
            job = start_render(project, priority=priority, **options)
        except RenderInProgress as exc:
            return Response(
                JobSerializer(exc.job).data, status=status.HTTP_409_CONFLICT
            )
        except RenderNotReady as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class AssetViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Assets are added through ``projects/{id}/assets/``; here they are read
    or deleted."""

    serializer_class = AssetSerializer

    def get_queryset(self):
        return assets_for_user(self.request.user).order_by("created_at", "id")

    @extend_schema(
        responses={
            204: None,
            409: OpenApiResponse(
                ErrorSerializer,
                description="Used by a render's scenes or an active render's song.",
            ),
        }
    )
    def _analysis(self) -> AudioAnalysis:
        asset = self.get_object()
        analysis = (
            find_analysis(asset.sha256) if asset.kind == Asset.Kind.AUDIO else None
        )
        if analysis is None:
            raise NotFound("This asset is not a song or has not been analysed yet.")
        return analysis

    @extend_schema(
        summary="The song's music analysis",
        description="The `analyze_audio --json` shape: duration, bpm, "
        "bpm_confidence, beats, downbeats, onsets, sections, energy; then meter, "
        "tempo_curve and loudness_lufs.",
        responses={200: OpenApiTypes.OBJECT, 404: ErrorSerializer},
    )
    @action(detail=True, methods=["get"])
    def analysis(self, request: Request, pk: str | None = None) -> Response:
        return Response(self._analysis().to_contract())

    @extend_schema(
        summary="The song's picture (SVG)",
        responses={(200, "image/svg+xml"): OpenApiTypes.BINARY, 404: ErrorSerializer},
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="picture",
        renderer_classes=[JSONRenderer, PassthroughRenderer],
    )
    def picture(self, request: Request, pk: str | None = None) -> HttpResponse:
        return svg_response(analysis_svg(self._analysis()))

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        asset = self.get_object()
        try:
            remove_asset(asset)
        except AssetInUse as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RenderViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = RenderSerializer

    def get_queryset(self):
        return renders_for_user(self.request.user).select_related("project")

    @extend_schema(
        summary="Download the video",
        parameters=[
            OpenApiParameter(
                "download",
                OpenApiTypes.BOOL,
                description="Send it as an attachment (the browser saves it).",
            )
        ],
        responses={(200, "video/mp4"): OpenApiTypes.BINARY},
    )
    @action(
        detail=True,
        methods=["get"],
        renderer_classes=[JSONRenderer, PassthroughRenderer],
    )
    def video(self, request: Request, pk: str | None = None) -> FileResponse:
        return render_video_response(
            self.get_object(), download=bool(request.query_params.get("download"))
        )

    @extend_schema(
        summary="Download the thumbnail",
        responses={(200, "image/jpeg"): OpenApiTypes.BINARY},
    )
    @action(
        detail=True,
        methods=["get"],
        renderer_classes=[JSONRenderer, PassthroughRenderer],
    )
    def thumbnail(self, request: Request, pk: str | None = None) -> FileResponse:
        return render_thumbnail_response(self.get_object())
