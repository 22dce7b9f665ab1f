"""The Prometheus endpoint: what it reports, read from real rows and the real
broker, and who may read it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import redis
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from media_jobs.metrics import priority_lists, queue_names
from media_jobs.models import CacheEntry, Job, RunStatus, TaskRun
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "scrape-me-0123456789"
# Queues no test worker serves (tests.processes runs ``-Q cpu,io``), so a
# message sent there stays put while the test reads the depth.
GPU_QUEUES = ("gpu-8", "gpu-16", "gpu-24", "gpu-48")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(autouse=True)
def _token(settings):
    settings.STUDIO_METRICS_TOKEN = TOKEN


def scrape(client) -> tuple[list, Samples]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    families = list(text_string_to_metric_families(response.content.decode()))
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in families
        for sample in family.samples
    }
    return families, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def family_names(families: list) -> set[str]:
    return {family.name for family in families}


@pytest.fixture
def broker(settings):
    """The test broker's Redis (STUDIO_REDIS_URL), with the GPU queues'
    lists emptied before and after."""
    if not settings.REDIS_URL:
        pytest.skip("needs STUDIO_REDIS_URL (a real Redis broker)")
    client = redis.Redis.from_url(settings.REDIS_URL)

    def clear() -> None:
        keys = [name for queue in GPU_QUEUES for name in priority_lists(queue)]
        client.delete(*keys)

    clear()
    yield client
    clear()
    client.close()


def send(queue: str, priority: int) -> None:
    from studio_site.celery import app

    app.send_task(
        "projects.render_scene", args=[0], queue=queue, priority=priority
    ).forget()


# --- the broker --------------------------------------------------------------


def test_queue_depth_of_one_message(client, broker):
    send("gpu-16", 3)

    _, samples = scrape(client)

    assert value(samples, "studio_queue_depth", queue="gpu-16") == 1.0
    assert value(samples, "studio_queue_depth", queue="gpu-24") == 0.0
    assert value(samples, "studio_broker_up") == 1.0


def test_queue_depth_counts_every_priority_list_of_a_queue(client, broker):
    for priority in (0, 3, 3, 9):
        send("gpu-16", priority)
    send("gpu-48", 6)
    # kombu spread them over the queue's lists: the plain name for step 0,
    # ``gpu-16:3`` and ``gpu-16:9`` for the others.
    assert broker.llen("gpu-16") == 1
    assert broker.llen("gpu-16:3") == 2
    assert broker.llen("gpu-16:9") == 1

    _, samples = scrape(client)

    assert value(samples, "studio_queue_depth", queue="gpu-16") == 4.0
    assert value(samples, "studio_queue_depth", queue="gpu-48") == 1.0
    assert value(samples, "studio_queue_depth", queue="gpu-8") == 0.0


def test_queue_depth_reports_every_configured_queue(client, broker):
    _, samples = scrape(client)

    reported = {
        dict(labels)["queue"]
        for name, labels in samples
        if name == "studio_queue_depth"
    }
    assert reported == set(queue_names()) == {"cpu", "io", *GPU_QUEUES}


def test_queue_unacked_counts_messages_taken_and_not_acknowledged(client, broker):
    # Other processes may use this broker: count what this test adds.
    _, before = scrape(client)
    tags = [f"test-{uuid.uuid4()}" for _ in range(2)]
    for tag in tags:
        broker.hset("unacked", tag, '[{"body": ""}, "", "gpu-16"]')
    try:
        _, after = scrape(client)
    finally:
        broker.hdel("unacked", *tags)

    assert value(after, "studio_queue_unacked") == value(
        before, "studio_queue_unacked"
    ) + len(tags)


def test_no_queue_metrics_without_a_broker(client, settings):
    settings.REDIS_URL = ""

    families, _ = scrape(client)

    names = family_names(families)
    assert "studio_queue_depth" not in names
    assert "studio_queue_unacked" not in names
    assert "studio_jobs" in names


def test_an_unreachable_broker_is_reported_down_and_the_rest_still_served(
    client, settings
):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    families, samples = scrape(client)

    assert value(samples, "studio_broker_up") == 0.0
    assert "studio_queue_depth" not in family_names(families)
    assert "studio_task_duration_seconds" in family_names(families)


# --- tasks -------------------------------------------------------------------


@pytest.fixture
def job(alice) -> Job:
    return Job.objects.create(owner=alice, kind=Job.Kind.RENDER)


def run(job: Job, key: str, **fields) -> TaskRun:
    fields.setdefault("task_name", "projects.render_scene")
    fields.setdefault("queue", "gpu-16")
    fields.setdefault("stage", "scenes")
    return TaskRun.objects.create(job=job, key=key, **fields)


def test_task_duration_histogram_buckets_finished_runs_only(client, job):
    for i, (status, seconds) in enumerate(
        [
            (RunStatus.DONE, 0.05),
            (RunStatus.DONE, 3.0),
            (RunStatus.FAILED, 45.0),
            (RunStatus.DONE, 4000.0),
            (RunStatus.RUNNING, 10.0),  # not finished
            (RunStatus.CANCELLED, 2.0),  # not run to an end
            (RunStatus.DONE, None),  # no timing
        ]
    ):
        run(job, f"scene-{i}", status=status, seconds=seconds)
    run(job, "assemble", task_name="projects.assemble", queue="cpu",
        status=RunStatus.DONE, seconds=12.0)  # fmt: skip

    _, samples = scrape(client)

    def bucket(le: str) -> float | None:
        return value(
            samples,
            "studio_task_duration_seconds_bucket",
            queue="gpu-16",
            task="projects.render_scene",
            le=le,
        )

    assert bucket("0.1") == 1
    assert bucket("5.0") == 2
    assert bucket("60.0") == 3
    assert bucket("3600.0") == 3
    assert bucket("+Inf") == 4
    labels = {"queue": "gpu-16", "task": "projects.render_scene"}
    assert value(samples, "studio_task_duration_seconds_count", **labels) == 4
    assert value(samples, "studio_task_duration_seconds_sum", **labels) == (
        pytest.approx(0.05 + 3.0 + 45.0 + 4000.0)
    )
    assert (
        value(
            samples,
            "studio_task_duration_seconds_count",
            queue="cpu",
            task="projects.assemble",
        )
        == 1
    )


def test_tasks_total_counts_outcomes_failures_and_redeliveries(client, job):
    run(job, "scene-0", status=RunStatus.DONE, seconds=1.0, deliveries=1)
    run(job, "scene-1", status=RunStatus.DONE, seconds=1.0, deliveries=3)
    run(job, "scene-2", status=RunStatus.FAILED, seconds=1.0, deliveries=2)
    run(job, "scene-3", status=RunStatus.FAILED, seconds=1.0, deliveries=1)
    run(job, "scene-4", status=RunStatus.CANCELLED, deliveries=0)
    run(job, "scene-5", status=RunStatus.RUNNING, deliveries=1)
    run(job, "scene-6", status=RunStatus.PENDING)
    run(job, "analyze", task_name="projects.analyze", queue="cpu",
        status=RunStatus.FAILED, deliveries=1)  # fmt: skip

    _, samples = scrape(client)

    labels = {"queue": "gpu-16", "task": "projects.render_scene"}
    assert value(samples, "studio_tasks_total", status="done", **labels) == 2
    assert value(samples, "studio_tasks_total", status="failed", **labels) == 2
    assert value(samples, "studio_tasks_total", status="cancelled", **labels) == 1
    assert value(samples, "studio_task_failures_total", **labels) == 2
    # deliveries 3 and 2: two and one redeliveries.
    assert value(samples, "studio_task_redeliveries_total", **labels) == 3
    assert value(samples, "studio_tasks_active", status="running", **labels) == 1
    assert value(samples, "studio_tasks_active", status="pending", **labels) == 1
    cpu = {"queue": "cpu", "task": "projects.analyze"}
    assert value(samples, "studio_task_failures_total", **cpu) == 1
    assert value(samples, "studio_task_redeliveries_total", **cpu) == 0


def test_dispatch_delay_is_started_minus_queued(client, job):
    t0 = timezone.now()
    for i, delay in enumerate([0.3, 20.0, 700.0]):
        run(job, f"scene-{i}", queue="gpu-24", queued_at=t0,
            started_at=t0 + timedelta(seconds=delay))  # fmt: skip
    run(job, "scene-9", queue="gpu-24", queued_at=t0)  # not started yet
    run(job, "scene-8", queue="gpu-24", started_at=t0)  # never recorded queued

    _, samples = scrape(client)

    def bucket(le: str) -> float | None:
        return value(
            samples, "studio_dispatch_delay_seconds_bucket", queue="gpu-24", le=le
        )

    assert bucket("0.1") == 0
    assert bucket("0.5") == 1
    assert bucket("30.0") == 2
    assert bucket("600.0") == 2
    assert bucket("1800.0") == 3
    assert bucket("+Inf") == 3
    assert value(
        samples, "studio_dispatch_delay_seconds_sum", queue="gpu-24"
    ) == pytest.approx(720.3)


def test_scrape_aggregates_in_the_database(client, job, django_assert_max_num_queries):
    """The number of queries does not grow with the number of rows."""
    t0 = timezone.now()
    for i in range(40):
        run(job, f"scene-{i}", queue=GPU_QUEUES[i % 4], task_name=f"t{i % 5}",
            status=RunStatus.DONE, seconds=float(i), deliveries=1 + i % 3,
            queued_at=t0, started_at=t0 + timedelta(seconds=i))  # fmt: skip
        CacheEntry.objects.create(fingerprint=f"{i:064d}", kind="scene", size=i)

    with django_assert_max_num_queries(6):
        _, samples = scrape(client)

    assert value(samples, "studio_cache_entries", kind="scene") == 40


# --- jobs and the cache ------------------------------------------------------


def test_jobs_by_status_and_kind_and_the_waiting_ones(client, alice):
    now = timezone.now()
    Job.objects.create(owner=alice, kind="render", status="queued")
    Job.objects.create(owner=alice, kind="render", status="queued")
    Job.objects.create(owner=alice, kind="render", status="queued", dispatched_at=now)
    Job.objects.create(owner=alice, kind="render", status="running", dispatched_at=now)
    Job.objects.create(owner=alice, kind="analyze", status="failed")

    _, samples = scrape(client)

    assert value(samples, "studio_jobs", status="queued", kind="render") == 3
    assert value(samples, "studio_jobs", status="running", kind="render") == 1
    assert value(samples, "studio_jobs", status="failed", kind="analyze") == 1
    # Combinations without jobs are reported as 0, not left out.
    assert value(samples, "studio_jobs", status="succeeded", kind="render") == 0
    assert value(samples, "studio_jobs_waiting") == 2


def test_cache_entries_hits_and_bytes_per_kind(client, db):
    CacheEntry.objects.create(fingerprint="a" * 64, kind="scene", hits=3, size=1000,
                              seconds=2.0)  # fmt: skip
    CacheEntry.objects.create(fingerprint="b" * 64, kind="scene", hits=1, size=500,
                              seconds=4.0)  # fmt: skip
    CacheEntry.objects.create(fingerprint="c" * 64, kind="render", hits=0, size=7)

    _, samples = scrape(client)

    assert value(samples, "studio_cache_entries", kind="scene") == 2
    assert value(samples, "studio_cache_hits_total", kind="scene") == 4
    assert value(samples, "studio_cache_bytes", kind="scene") == 1500
    assert value(samples, "studio_cache_entries", kind="render") == 1
    assert value(samples, "studio_cache_hits_total", kind="render") == 0
    assert value(samples, "studio_cache_bytes", kind="render") == 7
    assert value(samples, "studio_cache_saved_seconds_total", kind="scene") == 10.0


def test_an_empty_studio_reports_zeros(client):
    _, samples = scrape(client)

    assert value(samples, "studio_jobs_waiting") == 0
    assert value(samples, "studio_cache_entries", kind="scene") == 0
    assert value(samples, "studio_jobs", status="queued", kind="render") == 0


# --- access ------------------------------------------------------------------


def test_anonymous_request_is_not_found(client):
    assert client.get("/metrics").status_code == 404


def test_a_logged_in_user_who_is_not_staff_is_not_found(alice_client):
    assert alice_client.get("/metrics").status_code == 404


def test_a_wrong_token_is_unauthorized(client):
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"studio_" not in response.content


def test_the_right_token_is_served_in_the_prometheus_format(client):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert b"# TYPE studio_jobs gauge" in response.content
    # Only the studio's collector: no process or Python runtime metrics.
    assert b"process_" not in response.content
    assert b"python_gc" not in response.content


def test_another_authorization_scheme_is_not_found(client):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}")

    assert response.status_code == 404


def test_no_token_is_accepted_when_the_setting_is_empty(client, settings):
    settings.STUDIO_METRICS_TOKEN = ""

    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer x").status_code == 404


def test_staff_are_served_without_a_token(client):
    staff = UserFactory(username="operator", is_staff=True)
    client.force_login(staff)

    response = client.get("/metrics")

    assert response.status_code == 200
    assert b"studio_jobs" in response.content


def test_superusers_are_served(admin_client):
    assert admin_client.get("/metrics").status_code == 200


def test_only_reads_are_allowed(client):
    response = client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 405


def test_a_post_without_credentials_is_not_found(client):
    assert client.post("/metrics").status_code == 404
