"""Fixtures shared by every test: three users for permission tests (alice owns,
bob is another user, charlie never has access), media in a temporary folder,
and files the studio can make itself (photos from packages, a synthesized song).
"""

from __future__ import annotations

import pytest

# Fixtures that start real worker and web server processes.
pytest_plugins = ["tests.processes"]

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    """Every test writes media and scratch files under its own temp folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STUDIO_WORK_DIR = tmp_path / "work"
    settings.STUDIO_RUN_TASKS_IN_THREAD = False


@pytest.fixture(autouse=True)
def _empty_cache():
    """Throttle counters must not carry from one test into the next."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alice(db):
    from tests.factories import UserFactory

    return UserFactory(username="alice")


@pytest.fixture
def bob(db):
    from tests.factories import UserFactory

    return UserFactory(username="bob")


@pytest.fixture
def charlie(db):
    from tests.factories import UserFactory

    return UserFactory(username="charlie")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def charlie_client(client, charlie):
    client.force_login(charlie)
    return client


@pytest.fixture(scope="session")
def sample_files(tmp_path_factory) -> dict[str, object]:
    """Two portraits of two different people and a short synthesized song:
    the demo's material, with a song short enough for tests."""
    from projects.management.commands.demo import write_demo_material
    from workers.audio.synth import SongSpec

    spec = SongSpec(bpm=120.0, seed=7, sections=(("intro", 2), ("verse", 4)))
    root = tmp_path_factory.mktemp("samples")
    return write_demo_material(root, spec, song_name="song.wav")
