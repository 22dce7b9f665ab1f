"""The job progress websocket, through the real ASGI application: origin and
session checks, ownership, the first snapshot and group messages as HTML or JSON."""

from __future__ import annotations

import json

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from media_jobs.models import Job, group_name
from media_jobs.progress import ProgressPayload
from studio_site.asgi import application
from tests.factories import JobFactory, ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture(autouse=True)
async def _fresh_channel_layer():
    # The in-memory layer lives for the whole process; start each test empty.
    layer = get_channel_layer()
    await layer.flush()
    yield
    await layer.flush()


@pytest.fixture
def alice_job(alice) -> Job:
    project = ProjectFactory(owner=alice)
    return JobFactory(
        project=project, status=Job.Status.RUNNING, stage="analyze", progress=0.1
    )


def session_headers(logged_in_client) -> list[tuple[bytes, bytes]]:
    session = logged_in_client.cookies["sessionid"].value
    return [(b"cookie", f"sessionid={session}".encode()), ORIGIN]


def communicator(job_id: int, headers, query: str = "") -> WebsocketCommunicator:
    path = f"/ws/jobs/{job_id}/" + (f"?{query}" if query else "")
    return WebsocketCommunicator(application, path, headers=headers)


def payload(job: Job, **changes) -> ProgressPayload:
    event = ProgressPayload(
        type="job.progress",
        job=job.pk,
        status="running",
        stage="scenes",
        progress=0.5,
        message="3 of 6 scenes rendered",
        error="",
    )
    event.update(changes)
    return event


async def test_an_anonymous_visitor_is_refused(alice_job):
    ws = communicator(alice_job.pk, [ORIGIN])

    connected, code = await ws.connect()

    assert connected is False
    assert code == 4401


async def test_charlie_is_refused_on_alices_job(charlie_client, alice_job):
    ws = communicator(alice_job.pk, session_headers(charlie_client))

    connected, code = await ws.connect()

    assert connected is False
    assert code == 4404


async def test_a_job_that_does_not_exist_is_refused(alice_client, alice_job):
    ws = communicator(alice_job.pk + 1000, session_headers(alice_client))

    connected, code = await ws.connect()

    assert (connected, code) == (False, 4404)


async def test_a_connection_from_another_site_is_refused(alice_client, alice_job):
    cookie = session_headers(alice_client)[0]
    ws = communicator(alice_job.pk, [cookie, (b"origin", b"https://evil.example")])

    connected, _ = await ws.connect()

    assert connected is False


async def test_alice_receives_the_current_state_then_live_updates_as_html(
    alice_client, alice_job
):
    ws = communicator(alice_job.pk, session_headers(alice_client))
    connected, _ = await ws.connect()
    assert connected

    first = await ws.receive_from()
    await get_channel_layer().group_send(group_name(alice_job.pk), payload(alice_job))
    update = await ws.receive_from()
    await ws.disconnect()

    assert f'id="job-progress-{alice_job.pk}"' in first
    assert 'hx-swap-oob="true"' in first
    assert 'data-status="running"' in first and 'data-progress="0.1"' in first
    assert 'data-progress="0.5"' in update
    assert "3 of 6 scenes rendered" in update
    assert 'hx-trigger="every 2s"' in update


async def test_a_finished_job_update_stops_the_polling(alice_client, alice_job):
    ws = communicator(alice_job.pk, session_headers(alice_client))
    await ws.connect()
    await ws.receive_from()

    await get_channel_layer().group_send(
        group_name(alice_job.pk),
        payload(alice_job, status="failed", stage="failed", error="the song is silent"),
    )
    update = await ws.receive_from()
    await ws.disconnect()

    assert 'data-status="failed"' in update
    assert "the song is silent" in update
    assert "every 2s" not in update  # polling stops
    # ... and the finished job's result is fetched into the page.
    assert f'hx-get="/jobs/{alice_job.pk}/" hx-trigger="load"' in update


async def test_format_json_sends_the_payload_itself(alice_client, alice_job):
    ws = communicator(alice_job.pk, session_headers(alice_client), query="format=json")
    connected, _ = await ws.connect()
    assert connected

    first = json.loads(await ws.receive_from())
    await get_channel_layer().group_send(group_name(alice_job.pk), payload(alice_job))
    update = json.loads(await ws.receive_from())
    await ws.disconnect()

    assert first == {
        "type": "job.progress",
        "job": alice_job.pk,
        "status": "running",
        "stage": "analyze",
        "progress": 0.1,
        "message": "",
        "error": "",
    }
    assert update == dict(payload(alice_job))


async def test_the_consumer_leaves_the_group_on_disconnect(alice_client, alice_job):
    layer = get_channel_layer()
    ws = communicator(alice_job.pk, session_headers(alice_client))
    await ws.connect()
    await ws.receive_from()
    assert layer.groups.get(group_name(alice_job.pk))

    await ws.disconnect()

    assert not layer.groups.get(group_name(alice_job.pk))
