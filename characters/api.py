"""REST API of characters and their reference photos (DRF).

Every queryset comes from ``characters.access``, so another user's character
is a 404 here exactly as on the pages. No response carries an embedding or
the identity made from them: the serializers name every field they show.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
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
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from media_jobs.api import ErrorSerializer
from media_jobs.models import Job
from media_jobs.views import REVIEW_BADGES
from studio_site.upload_limits import upload_rejections

from .access import characters_for_user
from .jobs import registrations, start_registration
from .models import MAX_REFERENCES, Character, ReferenceImage
from .registration import (
    ReferenceRefused,
    add_reference_upload,
    create_character,
    delete_character,
    rebuild_identity,
    remove_reference,
    threshold_of,
)

# --- serializers ------------------------------------------------------------------


class NoteSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="Machine-readable, e.g. `blurred`, `small_face`, `turned`."
    )
    level = serializers.ChoiceField(
        choices=["reject", "warn"],
        help_text="`reject` turned the photo away; `warn` kept it.",
    )
    message = serializers.CharField()


class QualitySerializer(serializers.Serializer):
    """What the registration measured on the photo's face (empty until it
    is checked, or when no face was found)."""

    face_px = serializers.FloatField(
        required=False, help_text="The face box's shorter side, in pixels."
    )
    sharpness = serializers.FloatField(required=False)
    yaw = serializers.FloatField(required=False, help_text="Degrees.")
    pitch = serializers.FloatField(required=False, help_text="Degrees.")
    roll = serializers.FloatField(required=False, help_text="Degrees.")
    brightness = serializers.FloatField(
        required=False, help_text="Mean of the face, 0–255."
    )
    contrast = serializers.FloatField(required=False)
    clipped = serializers.FloatField(
        required=False, help_text="Share of clipped pixels."
    )
    side_balance = serializers.FloatField(required=False)


@extend_schema_field(
    {
        "type": "string",
        "enum": list(ReferenceImage.Status.values),
        "readOnly": True,
        "description": "pending: being checked; accepted; rejected (see notes).",
    }
)
class ReferenceStatusField(serializers.CharField):
    """The status as an inline enum, so it is not confused with a job's."""


class ReferenceSerializer(serializers.ModelSerializer):
    status = ReferenceStatusField(read_only=True)
    notes = NoteSerializer(many=True, read_only=True)
    quality = QualitySerializer(read_only=True)
    face_box = serializers.ListField(
        child=serializers.FloatField(),
        read_only=True,
        allow_null=True,
        help_text="The face used: x0, y0, x1, y1 as fractions of the photo.",
    )
    file_url = serializers.SerializerMethodField(help_text="The photo (session login).")
    crop_url = serializers.SerializerMethodField(
        help_text="The aligned 224 px face crop (session login); null until checked."
    )

    class Meta:
        model = ReferenceImage
        fields = [
            "id",
            "original_name",
            "mime",
            "size",
            "width",
            "height",
            "status",
            "notes",
            "quality",
            "faces_found",
            "face_box",
            "created_at",
            "file_url",
            "crop_url",
        ]
        read_only_fields = fields

    def get_file_url(self, reference: ReferenceImage) -> str:
        return reverse("characters:reference_photo", args=[reference.pk])

    def get_crop_url(self, reference: ReferenceImage) -> str | None:
        if not reference.crop:
            return None
        return reverse("characters:reference_crop", args=[reference.pk])


class RegistrationSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The job; follow it at /api/jobs/{id}/.")
    status = serializers.CharField()


class CharacterSerializer(serializers.ModelSerializer):
    threshold = serializers.FloatField(
        required=False,
        allow_null=True,
        min_value=0.0,
        max_value=1.0,
        help_text="Same-person similarity; null: the face provider's own.",
    )
    threshold_used = serializers.SerializerMethodField(
        help_text="The threshold scenes and photos are held to."
    )
    is_ready = serializers.BooleanField(
        read_only=True, help_text="Whether the character has an identity yet."
    )
    references = ReferenceSerializer(many=True, read_only=True)
    registration = serializers.SerializerMethodField(
        help_text="The latest registration job, or null."
    )

    class Meta:
        model = Character
        fields = [
            "id",
            "name",
            "description",
            "provider",
            "threshold",
            "threshold_used",
            "reference_count",
            "spread",
            "spread_max",
            "is_ready",
            "auto_created",
            "created_at",
            "updated_at",
            "references",
            "registration",
        ]
        read_only_fields = [
            "provider",
            "reference_count",
            "spread",
            "spread_max",
            "auto_created",
            "created_at",
            "updated_at",
        ]

    def get_threshold_used(self, character: Character) -> float:
        return threshold_of(character)

    @extend_schema_field(RegistrationSerializer(allow_null=True))
    def get_registration(self, character: Character) -> dict[str, Any] | None:
        known = self.context.get("registrations")
        if known is not None:
            job = known.get(character.pk)
        else:
            job = registrations(character).only("id", "status").first()
        return None if job is None else {"id": job.pk, "status": job.status}


def latest_registrations(characters: list[Character]) -> dict[int, Job]:
    """The newest registration job of each character, in one query."""
    ids = [character.pk for character in characters]
    if not ids:
        return {}
    jobs = Job.objects.filter(
        kind=Job.Kind.CHARACTER, params__character__in=ids
    ).order_by("-created_at", "-id")
    latest: dict[int, Job] = {}
    for job in jobs.only("id", "status", "params"):
        latest.setdefault(job.params.get("character"), job)
    return latest


class ReferenceUploadSerializer(serializers.Serializer):
    files = serializers.ListField(
        child=serializers.FileField(),
        help_text=f"One or several photos (at most {MAX_REFERENCES}); each is "
        "checked by its content.",
    )


class ReferenceUploadErrorSerializer(serializers.Serializer):
    file = serializers.CharField(help_text="The file's name as sent.")
    detail = serializers.CharField()


class ReferenceUploadResultSerializer(serializers.Serializer):
    references = ReferenceSerializer(many=True, help_text="The photos stored.")
    errors = ReferenceUploadErrorSerializer(many=True, help_text="The photos refused.")
    job = serializers.IntegerField(
        allow_null=True, help_text="The registration job that checks them."
    )


@extend_schema_field({"type": "string", "enum": list(REVIEW_BADGES), "readOnly": True})
class VerdictField(serializers.CharField):
    """The consistency gate's verdict as an inline enum."""


class CharacterSceneSerializer(serializers.Serializer):
    """A scene checked against the character (``projects.Scene``, read
    through the relation: this app does not import projects)."""

    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    project_title = serializers.CharField(source="project.title")
    job = serializers.IntegerField(source="job_id")
    index = serializers.IntegerField()
    start = serializers.FloatField()
    end = serializers.FloatField()
    consistency = serializers.FloatField(
        allow_null=True, help_text="Lowest frame score; null: no face seen."
    )
    threshold = serializers.SerializerMethodField()
    review = VerdictField()
    tries = serializers.IntegerField()

    def get_threshold(self, scene: Any) -> float | None:
        return (scene.gate or {}).get("threshold")


# --- the viewset ------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Your characters"),
    create=extend_schema(
        summary="Create a character",
        description="Then add photos with POST /api/characters/{id}/references/.",
    ),
    update=extend_schema(summary="Rename a character or set its threshold"),
    partial_update=extend_schema(summary="Rename a character or set its threshold"),
    destroy=extend_schema(
        summary="Delete a character with its photos, face crops and face data"
    ),
)
class CharacterViewSet(viewsets.ModelViewSet):
    serializer_class = CharacterSerializer

    def get_queryset(self) -> Any:
        return characters_for_user(self.request.user).prefetch_related("references")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        assert page is not None  # the API always paginates lists
        context = {
            **self.get_serializer_context(),
            "registrations": latest_registrations(page),
        }
        data = CharacterSerializer(page, many=True, context=context).data
        return self.get_paginated_response(data)

    def perform_create(self, serializer: CharacterSerializer) -> None:
        # The owner is always the caller; the provider is the studio's.
        data = serializer.validated_data
        serializer.instance = create_character(
            self.request.user,
            data["name"],
            description=data.get("description", ""),
            threshold=data.get("threshold"),
        )

    def perform_update(self, serializer: CharacterSerializer) -> None:
        old_threshold = serializer.instance.threshold
        character = serializer.save()
        if character.threshold != old_threshold:
            # Which photos count as this person depends on the threshold.
            serializer.instance = rebuild_identity(character) or character

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        delete_character(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        methods=["GET"],
        summary="The character's reference photos",
        responses=ReferenceSerializer(many=True),
    )
    @extend_schema(
        methods=["POST"],
        summary="Add reference photos",
        description="Each photo is stored on its own (a refused one is "
        "reported in `errors`, the others kept) and checked by a registration "
        "job. A single photo may also be sent as `file`.",
        request={"multipart/form-data": ReferenceUploadSerializer},
        responses={
            202: ReferenceUploadResultSerializer,
            400: OpenApiResponse(
                ReferenceUploadResultSerializer,
                description="No photo was stored.",
            ),
        },
    )
    @action(
        detail=True,
        methods=["get", "post"],
        url_path="references",
        parser_classes=[MultiPartParser, FormParser],
        pagination_class=None,
    )
    def references(self, request: Request, pk: str | None = None) -> Response:
        character = self.get_object()
        if request.method == "GET":
            refs = character.references.order_by("created_at", "id")
            return Response(ReferenceSerializer(refs, many=True).data)
        uploads = request.FILES.getlist("files") + request.FILES.getlist("file")
        errors = [
            {"file": name, "detail": message}
            for name, message in upload_rejections(request)
        ]
        if not uploads and not errors:
            errors.append({"file": "", "detail": "Send at least one photo as files."})
        if len(uploads) > MAX_REFERENCES:
            errors.append(
                {"file": "", "detail": f"Send at most {MAX_REFERENCES} photos at once."}
            )
            uploads = []
        stored = []
        for upload in uploads:
            try:
                stored.append(add_reference_upload(character, upload))
            except ReferenceRefused as exc:
                errors.append({"file": upload.name or "", "detail": str(exc)})
        job = start_registration(character) if stored else None
        body = {
            "references": ReferenceSerializer(stored, many=True).data,
            "errors": errors,
            "job": job.pk if job else None,
        }
        code = status.HTTP_202_ACCEPTED if stored else status.HTTP_400_BAD_REQUEST
        return Response(body, status=code)

    @extend_schema(
        methods=["GET"],
        summary="One reference photo",
        parameters=[OpenApiParameter("ref_id", int, OpenApiParameter.PATH)],
        responses={200: ReferenceSerializer, 404: ErrorSerializer},
    )
    @extend_schema(
        methods=["DELETE"],
        summary="Remove a reference photo",
        description="The photo, its face crop and its face data go; the "
        "identity is made again from the photos left.",
        parameters=[OpenApiParameter("ref_id", int, OpenApiParameter.PATH)],
        responses={204: None, 404: ErrorSerializer},
    )
    @action(
        detail=True,
        methods=["get", "delete"],
        url_path=r"references/(?P<ref_id>\d+)",
    )
    def reference(
        self, request: Request, pk: str | None = None, ref_id: str = "0"
    ) -> Response:
        character = self.get_object()
        found = character.references.filter(pk=int(ref_id)).first()
        if found is None:
            raise NotFound("No such reference photo.")
        if request.method == "GET":
            return Response(ReferenceSerializer(found).data)
        remove_reference(found)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Scenes checked against the character",
        description="Newest render first: each scene's score (its worst "
        "sampled frame), the threshold it was held to, the verdict and the "
        "attempts it took.",
        responses=CharacterSceneSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def scenes(self, request: Request, pk: str | None = None) -> Response:
        character = self.get_object()
        checked = (
            character.scenes.exclude(review="")
            .select_related("project")
            .order_by("-job__created_at", "-job_id", "index")
        )
        page = self.paginate_queryset(checked)
        assert page is not None
        return self.get_paginated_response(
            CharacterSceneSerializer(page, many=True).data
        )
