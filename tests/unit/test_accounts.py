"""Accounts: sign-up (switchable), login, logout, password change, admin access."""

from __future__ import annotations

import pytest
from django import forms
from django.contrib.auth import get_user_model
from django.template.loader import render_to_string
from django.urls import reverse

from tests.conftest import PASSWORD
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a much longer new passphrase 42"


def test_sign_up_creates_the_account_and_logs_it_in(client, settings):
    settings.STUDIO_ALLOW_SIGNUP = True

    response = client.post(
        reverse("signup"),
        {
            "username": "dana",
            "email": "",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("projects:list")
    user = get_user_model().objects.get(username="dana")
    assert client.get(reverse("projects:list")).wsgi_request.user == user


def test_sign_up_with_mismatched_passwords_shows_the_form_again(client, settings):
    settings.STUDIO_ALLOW_SIGNUP = True

    response = client.post(
        reverse("signup"),
        {"username": "dana", "password1": NEW_PASSWORD, "password2": "something else"},
    )

    assert response.status_code == 400
    assert "The two password fields didn’t match." in response.content.decode()
    assert not get_user_model().objects.filter(username="dana").exists()


def test_sign_up_is_a_404_when_switched_off(client, settings):
    settings.STUDIO_ALLOW_SIGNUP = False

    page = client.get(reverse("signup"))
    post = client.post(
        reverse("signup"),
        {"username": "dana", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    assert page.status_code == 404
    assert post.status_code == 404
    assert not get_user_model().objects.filter(username="dana").exists()


def test_the_login_page_offers_sign_up_only_when_it_is_open(client, settings):
    signup_url = reverse("signup")
    settings.STUDIO_ALLOW_SIGNUP = True
    assert signup_url in client.get(reverse("login")).content.decode()

    settings.STUDIO_ALLOW_SIGNUP = False
    assert signup_url not in client.get(reverse("login")).content.decode()


@pytest.mark.parametrize(
    "url",
    [
        "/projects/",
        "/projects/new/",
        "/projects/1/",
        "/jobs/1/",
        "/jobs/1/progress/",
        "/accounts/password/change/",
    ],
)
def test_pages_send_anonymous_visitors_to_the_login_page(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


def test_help_text_of_a_form_field_is_shown_as_text_not_markup():
    class NoteForm(forms.Form):
        note = forms.CharField(help_text="<script>alert(1)</script> & more")

    html = render_to_string("_form_fields.html", {"form": NoteForm()})

    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert "<script>" not in html


@pytest.mark.parametrize("page", ["signup", "password_change"])
def test_the_password_rules_are_shown_as_a_list(client, alice, settings, page):
    settings.STUDIO_ALLOW_SIGNUP = True
    if page == "password_change":
        client.force_login(alice)

    html = client.get(reverse(page)).content.decode()

    assert '<small class="help"><ul><li>' in html
    assert "at least 8 characters" in html
    assert "&lt;li&gt;" not in html


def test_the_home_page_redirects_to_the_project_list(alice_client):
    response = alice_client.get("/")

    assert response.status_code == 302
    assert response["Location"] == reverse("projects:list")


def test_logging_in_with_the_right_password_opens_the_projects(client, alice):
    response = client.post(
        reverse("login"), {"username": "alice", "password": PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("projects:list")
    assert client.get(reverse("projects:list")).status_code == 200


def test_logging_in_with_a_wrong_password_is_refused(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})

    assert response.status_code == 200
    assert client.get(reverse("projects:list")).status_code == 302


def test_logout_needs_a_post_and_ends_the_session(alice_client):
    assert alice_client.get(reverse("logout")).status_code == 405
    assert alice_client.get(reverse("projects:list")).status_code == 200

    response = alice_client.post(reverse("logout"))

    assert response.status_code == 302
    assert alice_client.get(reverse("projects:list")).status_code == 302


def test_pages_carry_the_csrf_token_for_htmx_and_a_logout_form(alice_client):
    html = alice_client.get(reverse("projects:list")).content.decode()

    assert 'hx-headers=\'{"X-CSRFToken": "' in html
    assert f'action="{reverse("logout")}"' in html
    assert "/static/vendor/htmx-2.0.11.min.js" in html
    assert "unpkg" not in html and "jsdelivr" not in html


def test_changing_the_password_takes_effect(alice_client, alice):
    response = alice_client.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("password_change_done")
    assert alice_client.get(reverse("password_change_done")).status_code == 200
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)


@pytest.mark.parametrize(
    "model",
    [
        "projects/project",
        "projects/asset",
        "projects/audioanalysis",
        "projects/scene",
        "projects/render",
        "media_jobs/job",
    ],
)
def test_staff_can_browse_each_model_in_the_admin(client, model):
    staff = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(staff)

    assert client.get(f"/admin/{model}/").status_code == 200


def test_the_admin_is_closed_to_users_who_are_not_staff(alice_client):
    response = alice_client.get("/admin/projects/project/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_can_set_the_owner_of_a_new_project_but_never_change_it(client, alice):
    staff = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(staff)
    project = ProjectFactory(owner=alice)

    add_page = client.get("/admin/projects/project/add/").content.decode()
    change_page = client.get(
        f"/admin/projects/project/{project.pk}/change/"
    ).content.decode()

    assert 'name="owner"' in add_page
    assert 'name="owner"' not in change_page
    assert "alice" in change_page
