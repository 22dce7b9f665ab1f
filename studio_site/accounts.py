"""Accounts: self-service sign-up (switched by ``STUDIO_ALLOW_SIGNUP``), the
password forms, and the API token endpoint.

A closed studio (the setting off) answers 404 on sign-up, as if the page did
not exist: operators then create accounts in the admin.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import login, password_validation
from django.contrib.auth.forms import PasswordChangeForm, UserCreationForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.throttling import ScopedRateThrottle


def password_rules_html() -> SafeString | str:
    """The password validators' rules as an HTML list.

    Forms' help text is escaped when shown; this one is markup on purpose.
    Django's own version comes through ``lazy()``, which loses the "safe" mark,
    so it is built here with ``format_html``, which escapes each rule.
    """
    items = format_html_join(
        "",
        "<li>{}</li>",
        ((rule,) for rule in password_validation.password_validators_help_texts()),
    )
    return format_html("<ul>{}</ul>", items) if items else ""


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=False, help_text="Optional; for password resets.")

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["password1"].help_text = password_rules_html()


class StudioPasswordChangeForm(PasswordChangeForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["new_password1"].help_text = password_rules_html()


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    # Read at request time, so the operator's setting (and tests) take effect.
    if not settings.STUDIO_ALLOW_SIGNUP:
        raise Http404("Sign-up is closed on this studio.")
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(settings.LOGIN_REDIRECT_URL)
    status = 400 if request.method == "POST" else 200
    return render(request, "registration/signup.html", {"form": form}, status=status)


class ThrottledObtainAuthToken(ObtainAuthToken):
    """DRF's token endpoint, rate-limited by the "token" scope.

    Each request checks a password, so without a limit it is a password-guessing
    oracle; DRF's own view switches throttling off.
    """

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"


obtain_auth_token = ThrottledObtainAuthToken.as_view()
