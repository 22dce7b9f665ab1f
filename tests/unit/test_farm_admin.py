"""The Django admin of the worker farm: jobs with their stages and tasks, the
task records, the model registry, the cache and the webhooks."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from media_jobs.models import (
    Batch,
    CacheEntry,
    Job,
    JobStage,
    ModelSpec,
    RunStatus,
    TaskRun,
    Webhook,
    WebhookDelivery,
)

pytestmark = pytest.mark.django_db


def url(model: str, view: str = "changelist", *args: object) -> str:
    return reverse(f"admin:media_jobs_{model}_{view}", args=args)


@pytest.fixture
def job(alice) -> Job:
    batch = Batch.objects.create(owner=alice, name="Spring campaign")
    job = Job.objects.create(
        owner=alice, kind=Job.Kind.RENDER, status="running", batch=batch, priority=2
    )
    JobStage.objects.create(job=job, name="analyze", position=0, status="done")
    JobStage.objects.create(job=job, name="scenes", position=1, status="running")
    TaskRun.objects.create(
        job=job,
        stage="scenes",
        key="scene-0",
        scene_index=0,
        task_name="projects.render_scene",
        queue="gpu-16",
        worker="gpu-host-1",
        status=RunStatus.DONE,
        deliveries=2,
        seconds=12.5,
        finished_at=timezone.now(),
    )
    TaskRun.objects.create(
        job=job,
        stage="scenes",
        key="scene-1",
        scene_index=1,
        task_name="projects.render_scene",
        queue="gpu-16",
        status=RunStatus.RUNNING,
    )
    return job


# --- jobs and task runs ------------------------------------------------------


def test_job_page_shows_its_stages_and_tasks_inline(admin_client, job):
    response = admin_client.get(url("job", "change", job.pk))

    assert response.status_code == 200
    inlines = {
        type(formset.opts).__name__: formset
        for formset in response.context["inline_admin_formsets"]
    }
    assert set(inlines) == {"JobStageInline", "TaskRunInline"}
    assert len(inlines["JobStageInline"].formset.forms) == 2
    assert len(inlines["TaskRunInline"].formset.forms) == 2
    content = response.content.decode()
    assert "scene-1" in content
    assert "gpu-host-1" in content


def test_job_inlines_cannot_add_change_or_delete(admin_client, job):
    response = admin_client.get(url("job", "change", job.pk))

    for formset in response.context["inline_admin_formsets"]:
        assert not formset.has_add_permission
        assert not formset.has_change_permission
        assert not formset.has_delete_permission


def test_job_state_stays_read_only_and_jobs_cannot_be_added(admin_client, job):
    response = admin_client.get(url("job", "change", job.pk))
    form_fields = set(response.context["adminform"].form.fields)

    assert "priority" in form_fields
    for owned_by_the_farm in ("status", "progress", "dispatched_at", "attempts"):
        assert owned_by_the_farm not in form_fields
    assert admin_client.get(url("job", "add")).status_code == 403


def test_job_list_filters_by_priority_and_batch(admin_client, job, alice):
    Job.objects.create(owner=alice, kind=Job.Kind.RENDER, priority=0)

    by_priority = admin_client.get(url("job"), {"priority__exact": 2})
    by_batch = admin_client.get(url("job"), {"batch__id__exact": job.batch_id})

    assert list(by_priority.context["cl"].result_list) == [job]
    assert list(by_batch.context["cl"].result_list) == [job]


def test_task_run_pages_render_and_filter(admin_client, job):
    run = job.task_runs.get(key="scene-0")

    listing = admin_client.get(url("taskrun"), {"status__exact": "done"})
    detail = admin_client.get(url("taskrun", "change", run.pk))

    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [run]
    assert detail.status_code == 200
    assert "gpu-host-1" in detail.content.decode()
    for params in ({"queue": "gpu-16"}, {"stage": "scenes"}, {"cached__exact": "0"}):
        assert admin_client.get(url("taskrun"), params).status_code == 200


def test_task_runs_are_read_only(admin_client, job):
    run = job.task_runs.get(key="scene-0")

    admin_client.post(url("taskrun", "change", run.pk), {"status": "failed"})

    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    assert admin_client.get(url("taskrun", "add")).status_code == 403
    assert admin_client.get(url("taskrun", "delete", run.pk)).status_code == 403


def test_batch_pages_count_and_list_their_jobs(admin_client, job):
    listing = admin_client.get(url("batch"))
    detail = admin_client.get(url("batch", "change", job.batch_id))

    assert listing.status_code == 200
    assert listing.context["cl"].result_list[0].job_count == 1
    assert detail.status_code == 200
    assert len(detail.context["inline_admin_formsets"][0].formset.forms) == 1


# --- the model registry ------------------------------------------------------


@pytest.fixture
def specs() -> dict[str, ModelSpec]:
    return {
        "big": ModelSpec.objects.create(
            key="test-big",
            name="Big",
            kind="scene",
            engine="diffusion",
            revision="2",
            vram_gb=12,
        ),  # fmt: skip
        "small": ModelSpec.objects.create(
            key="test-small",
            name="Small",
            kind="scene",
            engine="procedural",
            revision="1",
            vram_gb=0,
        ),  # fmt: skip
    }


def entry(n: int, **fields) -> CacheEntry:
    fields.setdefault("kind", "scene")
    return CacheEntry.objects.create(fingerprint=f"{n:064x}", **fields)


def test_model_list_shows_the_queue_and_the_cache_entries_of_each(admin_client, specs):
    entry(1, model_key="test-big", model_revision="2")
    entry(2, model_key="test-big", model_revision="2")
    entry(3, model_key="test-big", model_revision="1")

    response = admin_client.get(url("modelspec"), {"q": "test-"})

    assert response.status_code == 200
    rows = {spec.key: spec for spec in response.context["cl"].result_list}
    admin = response.context["cl"].model_admin
    assert admin.queue(rows["test-big"]) == "gpu-16"
    assert admin.queue(rows["test-small"]) == "cpu"
    assert admin.cache_entries(rows["test-big"]) == 2
    assert admin.stale_cache_entries(rows["test-big"]) == 1
    assert admin.cache_entries(rows["test-small"]) == 0
    assert "gpu-16" in response.content.decode()


def test_model_key_is_read_only_after_creation(admin_client, specs):
    spec = specs["big"]
    response = admin_client.post(
        url("modelspec", "change", spec.pk),
        {
            "key": "renamed",
            "name": "Big v3",
            "revision": "3",
            "vram_gb": "20",
            "enabled": "on",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    spec.refresh_from_db()
    assert (spec.key, spec.name, spec.revision, spec.vram_gb) == (
        "test-big",
        "Big v3",
        "3",
        20.0,
    )
    page = admin_client.get(url("modelspec", "change", spec.pk))
    assert "gpu-24" in page.content.decode()


def test_a_model_no_gpu_queue_can_hold_is_refused(admin_client, specs):
    spec = specs["big"]
    response = admin_client.post(
        url("modelspec", "change", spec.pk),
        {"name": "Huge", "revision": "2", "vram_gb": "500", "enabled": "on"},
    )

    assert response.status_code == 200
    assert "vram_gb" in response.context["adminform"].form.errors
    spec.refresh_from_db()
    assert spec.vram_gb == 12


def test_a_model_can_be_added_with_its_key(admin_client):
    response = admin_client.post(
        url("modelspec", "add"),
        {
            "key": "test-new",
            "name": "New",
            "kind": "scene",
            "engine": "procedural",
            "revision": "1",
            "vram_gb": "8",
            "enabled": "on",
        },
    )

    assert response.status_code == 302
    assert ModelSpec.objects.get(key="test-new").vram_gb == 8


# --- the cache ---------------------------------------------------------------


def test_cache_list_shows_the_statistics_above_the_entries(admin_client, db):
    entry(1, hits=3, size=2 * 1024 * 1024, seconds=10.0)
    entry(2, hits=1, size=1024 * 1024, seconds=5.0)
    entry(3, kind="render", hits=0, size=4096, seconds=30.0)

    response = admin_client.get(url("cacheentry"))

    assert response.status_code == 200
    stats = {row["kind"]: row for row in response.context["cache_statistics"]}
    assert stats["scene"]["entries"] == 2
    assert stats["scene"]["hits"] == 4
    assert stats["scene"]["seconds_saved"] == 35.0
    assert stats["render"]["entries"] == 1
    content = response.content.decode()
    assert content.index('id="cache-statistics"') < content.index('id="result_list"')
    assert "3.0\xa0MB" in content  # the scene total, human-readable
    assert "35.0" in content


def test_purge_removes_exactly_the_entries_of_old_model_revisions(admin_client, specs):
    kept = [
        entry(1, model_key="test-big", model_revision="2"),
        entry(2, model_key="test-small", model_revision="1"),
        entry(3, kind="render"),  # a render names no model: never stale
    ]
    stale = [
        entry(4, model_key="test-big", model_revision="1"),
        entry(5, model_key="test-small", model_revision="0"),
        entry(6, model_key="test-removed", model_revision="1"),
    ]

    before = admin_client.get(url("cacheentry"))
    response = admin_client.post(
        url("cacheentry"),
        {
            "action": "purge_old_revisions",
            "index": 0,
            "_selected_action": [kept[0].pk],
        },
        follow=True,
    )

    assert before.context["cache_stale_count"] == 3
    assert response.status_code == 200
    remaining = set(CacheEntry.objects.values_list("pk", flat=True))
    assert remaining == {e.pk for e in kept}
    assert not remaining & {e.pk for e in stale}
    messages = [str(m) for m in response.context["messages"]]
    assert messages == ["Removed 3 cache entries of old model revisions."]


def test_cache_entries_are_read_only(admin_client, db):
    cached = entry(1, model_key="m", model_revision="1", hits=2)

    admin_client.post(url("cacheentry", "change", cached.pk), {"hits": 99})

    cached.refresh_from_db()
    assert cached.hits == 2
    assert admin_client.get(url("cacheentry", "add")).status_code == 403
    listing = admin_client.get(url("cacheentry"), {"kind__exact": "scene"})
    assert f"{cached.fingerprint[:12]}" in listing.content.decode()
    assert cached.fingerprint not in listing.content.decode()


# --- webhooks ----------------------------------------------------------------


def test_webhook_secret_is_not_listed_nor_editable(admin_client, alice, job):
    hook = Webhook.objects.create(
        owner=alice, url="https://example.com/hook", secret="s3cr3t-signing-key"
    )
    WebhookDelivery.objects.create(webhook=hook, job=job, event="job.succeeded")

    listing = admin_client.get(url("webhook"))
    detail = admin_client.get(url("webhook", "change", hook.pk))

    assert "https://example.com/hook" in listing.content.decode()
    assert "s3cr3t-signing-key" not in listing.content.decode()
    assert "secret" not in detail.context["adminform"].form.fields
    assert admin_client.get(url("webhookdelivery")).status_code == 200
    delivery = hook.deliveries.get()
    assert admin_client.get(url("webhookdelivery", "change", delivery.pk)).status_code
    assert admin_client.get(url("webhookdelivery", "add")).status_code == 403


def test_a_webhook_added_in_the_admin_gets_a_secret(admin_client, alice):
    response = admin_client.post(
        url("webhook", "add"),
        {
            "owner": alice.pk,
            "url": "https://example.com/new",
            "events": "[]",
            "active": "on",
        },
    )

    assert response.status_code == 302
    assert len(Webhook.objects.get(url="https://example.com/new").secret) >= 32


def test_every_farm_list_renders(admin_client, job, specs):
    entry(1, model_key="test-big", model_revision="2")
    for model in (
        "job",
        "taskrun",
        "batch",
        "modelspec",
        "cacheentry",
        "webhook",
        "webhookdelivery",
    ):
        assert admin_client.get(url(model)).status_code == 200, model
