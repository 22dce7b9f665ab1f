from django.conf import settings
from django.http import HttpRequest


def studio(request: HttpRequest) -> dict[str, object]:
    """Values every page template may use."""
    return {"allow_signup": settings.STUDIO_ALLOW_SIGNUP}
