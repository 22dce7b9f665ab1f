"""The upload limit is enforced while the body arrives: a file past
STUDIO_MAX_UPLOAD_BYTES stops being spooled at once, leaves nothing on disk,
and is reported beside the other files like any other refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import SkipFile
from django.http import HttpRequest
from django.urls import reverse
from rest_framework.test import APIClient

from projects.models import Asset
from studio_site.upload_limits import LimitedTemporaryFileUploadHandler
from tests.unit.web_helpers import files_under, media_files, png_bytes

pytestmark = pytest.mark.django_db

LIMIT = 1024 * 1024
TOO_BIG = "is too big: it is over the limit of 1.0 MB."
HTMX = {"HX-Request": "true"}


@pytest.fixture
def small_limit(settings, tmp_path) -> Path:
    """A 1 MB limit, and Django's spool folder where the test can look into it."""
    spool = tmp_path / "spool"
    spool.mkdir()
    settings.STUDIO_MAX_UPLOAD_BYTES = LIMIT
    settings.FILE_UPLOAD_TEMP_DIR = str(spool)
    return spool


def big_file(name: str = "big.png") -> SimpleUploadedFile:
    # Over the limit by more than one 64 KB chunk, so part of it is spooled
    # before the handler sees the limit pass.
    return SimpleUploadedFile(name, b"\x89PNG" + b"\0" * (LIMIT + 100_000), "image/png")


def test_the_settings_install_the_limited_handler(settings):
    assert settings.FILE_UPLOAD_HANDLERS == [
        "studio_site.upload_limits.LimitedTemporaryFileUploadHandler"
    ]


def test_the_handler_drops_the_spooled_file_the_moment_it_passes_the_limit(
    small_limit,
):
    request = HttpRequest()
    handler = LimitedTemporaryFileUploadHandler(request)
    handler.new_file("files", "song.wav", "audio/wav", None)
    chunk = b"\0" * (LIMIT // 2)

    handler.receive_data_chunk(chunk, 0)
    handler.receive_data_chunk(chunk, len(chunk))  # exactly at the limit: kept
    spooled = Path(handler.file.temporary_file_path())
    assert spooled.stat().st_size == LIMIT
    with pytest.raises(SkipFile):
        handler.receive_data_chunk(b"\0", LIMIT)

    assert not spooled.exists()
    assert files_under(small_limit) == []
    assert request.upload_rejections == [("song.wav", f"'song.wav' {TOO_BIG}")]


def test_an_oversized_file_is_refused_on_the_page_and_the_others_are_kept(
    alice_client, project, small_limit
):
    response = alice_client.post(
        reverse("projects:upload", args=[project.pk]),
        {
            "files": [
                big_file(),
                SimpleUploadedFile("good.png", png_bytes(), content_type="image/png"),
            ]
        },
        headers=HTMX,
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-file="big.png"' in html and TOO_BIG in html
    assert "good.png added" in html
    assert [a.original_name for a in project.assets.all()] == ["good.png"]
    assert len(media_files()) == 1
    assert files_under(small_limit) == []


def test_a_page_upload_of_only_an_oversized_file_says_so(
    alice_client, project, small_limit
):
    response = alice_client.post(
        reverse("projects:upload", args=[project.pk]),
        {"files": [big_file()]},
        follow=True,
    )

    html = response.content.decode()
    assert TOO_BIG in html
    # The file was sent, so the page must not ask for one.
    assert "Choose at least one file to upload." not in html
    assert not Asset.objects.exists()
    assert media_files() == []
    assert files_under(small_limit) == []


def test_an_oversized_file_is_a_400_from_the_api_and_leaves_no_file(
    alice, project, small_limit
):
    api = APIClient()
    api.force_authenticate(alice)

    response = api.post(
        f"/api/projects/{project.pk}/assets/",
        {"file": big_file()},
        format="multipart",
    )

    assert response.status_code == 400
    assert response.json() == {"file": [f"'big.png' {TOO_BIG}"]}
    assert not Asset.objects.exists()
    assert media_files() == []
    assert files_under(small_limit) == []
