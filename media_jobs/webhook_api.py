"""REST API of webhooks: an integration (n8n, a script) registers a URL that
receives an HMAC-signed POST on its owner's job state changes.

The signing secret is made here (``secrets.token_hex(32)``), shown once in
the answer to the create (and to ``rotate_secret``), and never again: like an
API token, a secret that can be read back is one more place it can leak from.
"""

from __future__ import annotations

import secrets
from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from .models import Webhook, WebhookDelivery
from .webhooks import EVENTS, TargetRefused, check_target, is_allowed_url

RECENT_DELIVERIES = 50


def new_secret() -> str:
    return secrets.token_hex(32)


class WebhookSerializer(serializers.ModelSerializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENTS),
        required=False,
        allow_empty=True,
        help_text="Events that trigger a POST; empty (the default) means all.",
    )

    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "active", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate_url(self, url: str) -> str:
        if not is_allowed_url(url):
            raise serializers.ValidationError("Only http and https URLs are allowed.")
        # No internal targets (SSRF) unless STUDIO_WEBHOOK_ALLOW_PRIVATE: a
        # literal address or a name that resolves to one is refused here; a
        # name that does not resolve is accepted, and every delivery checks
        # the target again, after resolving it (what it resolves to changes).
        try:
            check_target(url, unresolved_ok=True)
        except TargetRefused as exc:
            raise serializers.ValidationError(f"Webhook {exc}.") from None
        return url

    def validate_events(self, events: list[str]) -> list[str]:
        # Kept in the order of EVENTS, each once.
        return [event for event in EVENTS if event in set(events)]


class WebhookWithSecretSerializer(WebhookSerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="The HMAC-SHA256 signing key. Shown only in this answer: "
        "store it now.",
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class WebhookSecretSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    secret = serializers.CharField(
        help_text="The new signing key; the old one stops working now."
    )


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "job",
            "event",
            "status",
            "attempts",
            "response_code",
            "error",
            "created_at",
            "delivered_at",
        ]
        read_only_fields = fields


@extend_schema_view(
    create=extend_schema(
        summary="Register a webhook",
        description="The answer carries the signing secret, the only time it is shown.",
        responses={201: WebhookWithSecretSerializer},
    ),
)
class WebhookViewSet(viewsets.ModelViewSet):
    """Webhooks of the requesting user; another user's is not found."""

    serializer_class = WebhookSerializer

    def get_queryset(self) -> Any:
        if not self.request.user.is_authenticated:
            return Webhook.objects.none()
        return Webhook.objects.filter(owner=self.request.user)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        webhook = serializer.save(owner=request.user, secret=new_secret())
        return Response(
            WebhookWithSecretSerializer(webhook).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        summary="Replace the signing secret",
        request=None,
        responses={200: WebhookSecretSerializer},
    )
    @action(detail=True, methods=["post"])
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        webhook = self.get_object()
        webhook.secret = new_secret()
        webhook.save(update_fields=["secret"])
        return Response(
            WebhookSecretSerializer({"id": webhook.pk, "secret": webhook.secret}).data
        )

    @extend_schema(
        summary="The webhook's last 50 deliveries, newest first",
        responses={200: WebhookDeliverySerializer(many=True)},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        webhook = self.get_object()
        recent = webhook.deliveries.order_by("-created_at", "-id")[:RECENT_DELIVERIES]
        return Response(WebhookDeliverySerializer(recent, many=True).data)
