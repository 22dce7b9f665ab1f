import pytest


@pytest.fixture(autouse=True)
def _in_memory_channel_layer(settings):
    """Unit tests keep websocket traffic inside the test process; the Redis
    channel layer is exercised by the integration tests with a real worker."""
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    }
