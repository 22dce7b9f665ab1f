import pytest

from projects.models import Project
from projects.uploads import add_asset_from_path
from tests.factories import ProjectFactory


@pytest.fixture(autouse=True)
def _in_memory_channel_layer(settings):
    """Unit tests keep websocket traffic inside the test process; the Redis
    channel layer is exercised by the integration tests with a real worker."""
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    }


@pytest.fixture
def project(alice) -> Project:
    return ProjectFactory(owner=alice, title="Summer song")


@pytest.fixture
def ready_project(project, sample_files) -> Project:
    """A project with what a render needs: a photo and a song."""
    add_asset_from_path(project, sample_files["astronaut"])
    add_asset_from_path(project, sample_files["song"])
    return project
