"""Fingerprint caching through the real pipeline: an identical render runs no
engine, a model revision change recomputes exactly what that model made."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from media_jobs import cache
from media_jobs.models import CacheEntry, Job, ModelSpec, TaskRun
from projects.models import Render, Scene
from projects.pipeline import render_now
from projects.uploads import add_asset_from_path
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(alice, sample_files):
    project = ProjectFactory(owner=alice, target_duration=6.0, preset="preview")
    for name in ("astronaut", "hopper", "song"):
        add_asset_from_path(project, sample_files[name])
    return project


def _spoil_uploads(project) -> None:
    """Make every upload unreadable, so any engine that ran would fail."""
    for asset in project.assets.all():
        Path(default_storage.path(asset.file.name)).write_bytes(b"\x00" * 512)


def _runs(job: Job) -> dict[str, bool]:
    return dict(TaskRun.objects.filter(job=job).values_list("key", "cached"))


def test_an_identical_render_is_served_from_the_cache_without_any_engine(project):
    first = render_now(project)
    assert first.status == Job.Status.SUCCEEDED, first.error
    assert not any(_runs(first).values())
    _spoil_uploads(project)

    second = render_now(project)

    assert second.status == Job.Status.SUCCEEDED, second.error
    runs = _runs(second)
    # Planning the storyboard is arithmetic on the analysis, not an engine.
    engines = {key: cached for key, cached in runs.items() if key != "plan"}
    assert all(engines.values()), runs
    assert {"analyze", "scene-0", "scene-1", "assemble"} <= set(engines)
    render = Render.objects.get(job=second)
    assert render.cached
    assert render.file == Render.objects.get(job=first).file
    assert "from the cache" in second.message
    assert all(stage.cached for stage in second.stages.filter(name="analyze"))


def test_a_model_revision_change_recomputes_exactly_what_it_made(project):
    first = render_now(project)
    scene_entries = CacheEntry.objects.filter(kind=CacheEntry.Kind.SCENE)
    old = set(scene_entries.values_list("fingerprint", flat=True))
    assert old and set(scene_entries.values_list("model_revision", flat=True)) == {"1"}

    ModelSpec.objects.filter(key="photo").update(revision="2")
    second = render_now(project)

    runs = _runs(second)
    assert runs["analyze"] is True  # the song's analysis does not use the model
    scene_runs = {k: v for k, v in runs.items() if k.startswith("scene-")}
    assert scene_runs and not any(scene_runs.values())  # every scene made again
    assert runs["assemble"] is False  # its scenes changed, so the video did
    new = {s.fingerprint for s in Scene.objects.filter(job=second)}
    assert new.isdisjoint(old)
    # The old revision's entries can no longer be reached, and only they go.
    assert set(cache.stale_entries().values_list("fingerprint", flat=True)) == old
    assert cache.purge_stale() == len(old)
    assert (
        set(
            CacheEntry.objects.filter(kind=CacheEntry.Kind.SCENE).values_list(
                "fingerprint", flat=True
            )
        )
        == new
    )
    assert first.status == second.status == Job.Status.SUCCEEDED


def test_an_entry_whose_output_was_removed_is_computed_again(project):
    render_now(project)
    entry = CacheEntry.objects.filter(kind=CacheEntry.Kind.SCENE).first()
    default_storage.delete(entry.files[0])

    again = render_now(project)

    assert again.status == Job.Status.SUCCEEDED, again.error
    assert not CacheEntry.objects.filter(
        pk=entry.pk
    ).exists() or default_storage.exists(entry.files[0])
    remade = Scene.objects.filter(job=again, fingerprint=entry.fingerprint)
    assert remade and not any(scene.cached for scene in remade)
    assert default_storage.exists(entry.files[0])


def test_cache_statistics_count_entries_hits_and_time_saved(project):
    render_now(project)
    render_now(project)

    stats = {row["kind"]: row for row in cache.statistics()}

    scenes = Scene.objects.filter(job__status=Job.Status.SUCCEEDED).count() // 2
    distinct = CacheEntry.objects.filter(kind=CacheEntry.Kind.SCENE).count()
    assert stats["scene"]["entries"] == distinct
    assert stats["scene"]["hits"] == scenes
    assert stats["render"] == {**stats["render"], "entries": 1, "hits": 1}
    assert stats["render"]["seconds_saved"] > 0


def test_purging_stale_entries_removes_their_files_unless_a_scene_shows_them(
    project,
):
    first = render_now(project)
    assert first.status == Job.Status.SUCCEEDED, first.error
    ModelSpec.objects.filter(key="photo").update(revision="2")
    stale = list(cache.stale_entries())
    files = {name for entry in stale for name in entry.files}
    assert len(stale) >= 2 and files
    assert all(default_storage.exists(name) for name in files)
    # One old scene is still on show (its render is kept); the others are gone.
    kept = Scene.objects.filter(job=first, thumbnail__in=files).first()
    assert kept is not None
    Scene.objects.filter(job=first).exclude(pk=kept.pk).delete()

    assert cache.purge_stale() == len(stale)

    assert not CacheEntry.objects.filter(pk__in=[e.pk for e in stale]).exists()
    shown = {kept.thumbnail, kept.clip}
    assert default_storage.exists(kept.thumbnail)
    gone = files - shown
    assert gone and not any(default_storage.exists(name) for name in gone)
