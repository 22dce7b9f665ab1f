"""The consistency gate in the render pipeline, on real faces: Quick mode
registers the character from the photos, every scene showing them is
checked, a scene that drifts is made again with new seeds, and one that
never passes waits for its owner's review."""

from __future__ import annotations

import pytest

from characters.models import Character
from media_jobs.models import CacheEntry, Job
from projects import pipeline, review
from projects.models import Project, Render, Scene
from projects.pipeline import render_now
from projects.scene_engines import engines
from projects.scene_making import next_seed
from projects.uploads import add_asset_from_path
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

DRIFT = "drift"


@pytest.fixture
def drifting(settings, monkeypatch, sample_files):
    """The drifting test engine as the model "drift", its impostor Grace
    Hopper; ``drift(seeds)`` says which seeds lose the character."""
    from media_jobs.models import ModelSpec

    settings.STUDIO_SCENE_ENGINES = ["tests.engines:DriftingEngine"]
    engines.cache_clear()
    ModelSpec.objects.create(
        key=DRIFT, name="Drifting test generator", kind=ModelSpec.Kind.SCENE,
        engine="drift-test", revision="1", vram_gb=0.0,
    )  # fmt: skip
    monkeypatch.setenv("STUDIO_TEST_IMPOSTOR", str(sample_files["hopper"]))

    def drift(*seeds: int) -> None:
        monkeypatch.setenv("STUDIO_TEST_DRIFT_SEEDS", ",".join(map(str, seeds)))

    drift()
    yield drift
    engines.cache_clear()


@pytest.fixture
def solo(alice, sample_files) -> Project:
    """The astronaut alone, a 4 s preview: every scene shows her."""
    project = ProjectFactory(
        owner=alice, title="Solo", target_duration=4.0, preset="preview"
    )
    add_asset_from_path(project, sample_files["astronaut"])
    add_asset_from_path(project, sample_files["song"])
    return project


@pytest.fixture
def in_process(settings, django_capture_on_commit_callbacks):
    """Jobs the scheduler sends run here, as in the embedded default, when
    the callbacks of a commit are run (``with in_process():``)."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return lambda: django_capture_on_commit_callbacks(execute=True)


def _scenes(job: Job) -> list[Scene]:
    return list(Scene.objects.filter(job=job).order_by("index"))


ALL_ATTEMPTS = (0, next_seed(0, 2), next_seed(0, 3))


def test_quick_mode_finds_the_character_and_checks_every_scene_of_them(
    alice, sample_files
):
    project = ProjectFactory(owner=alice, target_duration=6.0, preset="preview")
    astronaut = add_asset_from_path(project, sample_files["astronaut"])
    hopper = add_asset_from_path(project, sample_files["hopper"])
    add_asset_from_path(project, sample_files["song"])

    job = render_now(project)

    assert job.status == Job.Status.SUCCEEDED, job.error
    project.refresh_from_db()
    character = project.character
    assert character is not None and character.auto_created and character.is_ready
    assert character.owner == alice
    # Two people, one photo each: the earliest photo's person is the lead.
    refs = list(character.references.all())
    assert [r.sha256 for r in refs] == [astronaut.sha256]
    photos = job.params["character"]["photos"]
    assert photos[str(astronaut.pk)]["shows_character"] is True
    assert photos[str(hopper.pk)]["shows_character"] is False
    for scene in _scenes(job):
        if scene.image_id == astronaut.pk:
            assert scene.character_id == character.pk
            assert scene.review == Scene.Review.PASSED
            assert scene.consistency >= scene.gate["threshold"]
            assert scene.gate["frames"] and scene.tries == 1
            # Moves close in on her face, not the middle of the photo.
            x0, y0, x1, y1 = photos[str(astronaut.pk)]["box"]
            assert scene.focus == pytest.approx(((x0 + x1) / 2, (y0 + y1) / 2))
        else:
            assert scene.character_id is None and scene.review == ""
    manifest = Render.objects.get(job=job).manifest
    assert manifest["character"] == {"id": character.pk, "name": character.name}
    checked = [s for s in manifest["scenes"] if "consistency" in s]
    assert checked and all(s["consistency"]["review"] == "passed" for s in checked)


def test_a_drifting_scene_is_made_again_with_a_new_seed_until_it_passes(drifting, solo):
    drifting(0)  # the first attempt of every scene loses the character

    job = render_now(solo, model=DRIFT)

    assert job.status == Job.Status.SUCCEEDED, job.error
    for scene in _scenes(job):
        assert scene.review == Scene.Review.PASSED
        assert scene.tries == 2
        assert scene.seed == next_seed(0, 2)
        first, second = scene.gate["attempts"]
        assert first["seed"] == 0 and first["passed"] is False
        assert second["seed"] == next_seed(0, 2) and second["passed"] is True
        assert scene.clip.endswith(".mp4")


def test_a_scene_that_never_passes_waits_for_review_until_approved(
    drifting, solo, in_process
):
    drifting(*ALL_ATTEMPTS)

    job = render_now(solo, model=DRIFT)

    assert job.status == Job.Status.REVIEW
    solo.refresh_from_db()
    assert solo.status == Project.Status.REVIEW
    assert not Render.objects.filter(job=job).exists()
    flagged = [s for s in _scenes(job) if s.review == Scene.Review.FLAGGED]
    assert flagged and all(s.tries == 3 for s in flagged)
    for scene in flagged:
        # Each attempt switches person half-way; the failure is at the switch.
        assert scene.gate["failure"]["frame"] == scene.frames // 2
        assert scene.consistency < scene.gate["threshold"]
    assert list(review.review_queue(solo.owner)) == flagged
    assert str(len(flagged)) in job.message and "await review" in job.message

    for scene in flagged[:-1]:
        review.approve(scene)
    job.refresh_from_db()
    assert job.status == Job.Status.REVIEW  # one scene still undecided
    with in_process():
        review.approve(flagged[-1])

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert Render.objects.filter(job=job).exists()
    assert all(s.review == Scene.Review.APPROVED for s in _scenes(job))
    assert not review.review_queue(solo.owner).exists()


def test_regenerating_a_flagged_scene_makes_it_again_and_finishes_the_render(
    drifting, solo, in_process
):
    drifting(*ALL_ATTEMPTS)
    job = render_now(solo, model=DRIFT)
    assert job.status == Job.Status.REVIEW
    flagged = [s for s in _scenes(job) if s.review == Scene.Review.FLAGGED]
    others = flagged[1:]
    for scene in others:
        review.approve(scene)

    with in_process():
        review.regenerate(flagged[0], seed=12345)

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    remade = Scene.objects.get(pk=flagged[0].pk)
    assert remade.seed == 12345 and remade.review == Scene.Review.PASSED
    assert remade.tries == 1
    stage = job.stages.get(name="scenes")
    assert (stage.status, stage.finished_at is not None) == ("done", True)
    with pytest.raises(review.ReviewRefused):
        review.approve(remade)


def test_with_the_continue_policy_the_video_is_made_and_the_scene_listed(
    drifting, solo, in_process
):
    drifting(*ALL_ATTEMPTS)
    job = render_now(solo, model=DRIFT, review_policy="continue")

    assert job.status == Job.Status.SUCCEEDED, job.error
    render = Render.objects.get(job=job)
    flagged = list(review.review_queue(solo.owner))
    assert flagged and {s.job_id for s in flagged} == {job.pk}
    listed = {s["index"]: s for s in render.manifest["scenes"]}
    assert all(listed[s.index]["consistency"]["review"] == "flagged" for s in flagged)

    drifting()  # the generator behaves from now on
    with in_process():
        child = review.regenerate(flagged[0])
    assert child.parent_id == job.pk
    child.refresh_from_db()
    assert child.status == Job.Status.SUCCEEDED, child.error
    assert Scene.objects.get(pk=flagged[0].pk).review == Scene.Review.REDONE
    made_again = Scene.objects.get(job=child, index=flagged[0].index)
    assert made_again.review == Scene.Review.PASSED
    # The other scenes came over with their verdicts: nothing checked or
    # tried again for them (their attempts are the parent's).
    for scene in flagged[1:]:
        kept = Scene.objects.get(job=child, index=scene.index)
        assert (kept.review, kept.tries, kept.seed) == ("flagged", 3, scene.seed)
        assert kept.gate["attempts"] == scene.gate["attempts"]


def test_a_project_without_faces_renders_without_checks(alice, sample_files, tmp_path):
    import numpy as np
    import skimage.data
    from PIL import Image

    coffee = tmp_path / "coffee.png"
    Image.fromarray(np.ascontiguousarray(skimage.data.coffee())).save(coffee)
    project = ProjectFactory(owner=alice, target_duration=4.0, preset="preview")
    add_asset_from_path(project, coffee)
    add_asset_from_path(project, sample_files["song"])

    job = render_now(project)

    assert job.status == Job.Status.SUCCEEDED, job.error
    project.refresh_from_db()
    assert project.character is None
    assert not Character.objects.exists()
    assert job.params["character"] is None
    assert all(s.review == "" and s.character_id is None for s in _scenes(job))


def test_a_second_identical_render_takes_its_checks_from_the_cache(drifting, solo):
    drifting(0)
    first = render_now(solo, model=DRIFT)
    checks = CacheEntry.objects.filter(kind=CacheEntry.Kind.CHECK)
    made = checks.count()
    assert made >= 2  # a failed and a passing attempt per scene

    second = render_now(solo, model=DRIFT)

    assert second.status == Job.Status.SUCCEEDED, second.error
    assert checks.count() == made
    assert sum(entry.hits for entry in checks.all()) >= made
    assert [s.seed for s in _scenes(second)] == [s.seed for s in _scenes(first)]


def test_deleting_the_character_keeps_the_renders_and_their_scores(solo):
    from characters.registration import delete_character

    job = render_now(solo)
    assert job.status == Job.Status.SUCCEEDED, job.error
    solo.refresh_from_db()
    delete_character(solo.character)

    solo.refresh_from_db()
    assert solo.character is None
    scenes = _scenes(job)
    assert all(s.character_id is None for s in scenes)
    assert all(s.consistency is not None for s in scenes)


def _upload(path, name: str | None = None):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name or path.name, path.read_bytes())


def test_quick_mode_finds_the_character_as_photos_arrive_and_keeps_learning(
    alice, sample_files, in_process, tmp_path
):
    from PIL import Image, ImageOps

    from projects.uploads import accept_upload

    project = ProjectFactory(owner=alice, title="Arrivals")
    mirrored = tmp_path / "astronaut-mirrored.png"
    ImageOps.mirror(Image.open(sample_files["astronaut"])).save(mirrored)

    with in_process():
        accept_upload(project, _upload(sample_files["astronaut"]))
    project.refresh_from_db()
    character = project.character
    assert character is not None and character.name == "Lead of Arrivals"
    assert character.reference_count == 1
    cast = Job.objects.get(project=project, kind=Job.Kind.CAST)
    assert cast.status == Job.Status.SUCCEEDED, cast.error

    with in_process():
        accept_upload(project, _upload(sample_files["hopper"]))  # someone else
        accept_upload(project, _upload(mirrored))  # her again
    character.refresh_from_db()
    names = set(character.references.values_list("original_name", flat=True))
    assert names == {"astronaut.png", "astronaut-mirrored.png"}
    assert character.reference_count == 2


def test_the_character_stage_is_cached_only_when_nothing_was_looked_for(solo):
    from media_jobs.models import JobStage

    first = render_now(solo)  # finds the character
    second = render_now(solo)  # knows her and where she is in the photo

    def cached(job: Job) -> bool:
        return JobStage.objects.get(job=job, name="character").cached

    assert (cached(first), cached(second)) == (False, True)
    # The second render looked each photo's match up once.
    matches = CacheEntry.objects.filter(kind=CacheEntry.Kind.FACES)
    assert matches.exists() and all(entry.hits == 1 for entry in matches)


def test_an_approved_scene_stays_approved_in_a_render_made_from_it(
    drifting, solo, in_process
):
    drifting(*ALL_ATTEMPTS)
    job = render_now(solo, model=DRIFT)
    flagged = [s for s in _scenes(job) if s.review == Scene.Review.FLAGGED]
    with in_process():
        for scene in flagged:
            review.approve(scene)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    checks = CacheEntry.objects.filter(kind=CacheEntry.Kind.CHECK).count()

    with in_process():
        child = pipeline.rerender_scene(job, flagged[0].index, seed=777)

    child.refresh_from_db()
    assert child.status in (Job.Status.REVIEW, Job.Status.SUCCEEDED), child.error
    for scene in flagged[1:]:
        kept = Scene.objects.get(job=child, index=scene.index)
        assert (kept.review, kept.tries) == (Scene.Review.APPROVED, 3)
    # Only the scene made again was checked: the seeds of its attempts.
    assert CacheEntry.objects.filter(kind=CacheEntry.Kind.CHECK).count() == (
        checks + Scene.objects.get(job=child, index=flagged[0].index).tries
    )


def test_a_render_from_before_the_character_stage_resumes_at_its_scenes(
    solo, monkeypatch
):
    from projects.tasks import analyze_music, plan_scenes

    monkeypatch.setattr("projects.tasks.fan_out", lambda task, canvas: None)
    job = pipeline.create_render_job(solo)
    analyze_music.apply(args=(job.pk,))
    plan_scenes.apply(args=(job.pk,))
    job.refresh_from_db()
    assert job.params["stages_finished"] == ["analyze", "plan"]

    canvas = pipeline.render_canvas(job)

    described = str(canvas)
    assert "find_character" not in described
    assert "render_scene" in described and pipeline.ASSEMBLE_TASK in described


def test_a_quick_mode_search_that_fails_leaves_no_character(
    alice, sample_files, monkeypatch, settings
):
    from pathlib import Path

    from characters import quick
    from characters.quick import Photo

    def storage_fails(*args, **kwargs):
        raise OSError("the media volume is full")

    monkeypatch.setattr(quick, "add_reference", storage_fails)
    photo = Photo(Path(sample_files["astronaut"]), "astronaut.png", 1)

    with pytest.raises(OSError, match="volume is full"):
        quick.find_character(alice, [photo], "Lead")

    assert not Character.objects.exists()
    assert not list(Path(settings.MEDIA_ROOT).rglob("*.jpg"))


def test_a_check_with_another_face_model_than_the_characters_says_so(solo):
    from characters.consistency import check_source
    from workers.faces.base import FaceModelMissing

    job = render_now(solo)
    character = Character.objects.get(pk=job.params["character"]["id"])
    character.provider_version = "dlib-hog-resnet-0"

    with pytest.raises(FaceModelMissing, match="check the character's photos again"):
        check_source(character, None)  # type: ignore[arg-type]
