"""The review queue: flagged scenes with what the consistency check saw, and
the owner's decisions (approve, regenerate, replace) on the page and in the
API; a render held for review goes on when its last flagged scene is
decided. The job page says when a render waits for a review, and each scene
card shows its verdict."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from characters.models import Character
from characters.registration import create_character
from media_jobs import records
from media_jobs.models import Job
from projects.models import Asset, Project, Scene
from projects.scene_engines import engines
from tests.factories import JobFactory, ProjectFactory
from tests.unit.character_helpers import (
    THRESHOLD,
    make_scenes,
    photo_upload,
    seeded_generator,
)
from tests.unit.web_helpers import HTML_POLYGLOT, stored_image_asset

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@dataclass
class Held:
    """Alice's render held for review: scenes 0 and 1 flagged, 2 passed."""

    project: Project
    job: Job
    character: Character
    photos: list[Asset]
    scenes: list[Scene]


@pytest.fixture
def held(alice, project, settings) -> Iterator[Held]:
    generator = seeded_generator(settings)
    character = create_character(alice, "Ann")
    photos = [
        stored_image_asset(project, name="first.png", color=(10, 20, 30)),
        stored_image_asset(project, name="second.png", color=(40, 50, 60)),
    ]
    job = JobFactory(
        project=project, status=Job.Status.REVIEW, stage="review", progress=0.6
    )
    records.create_stages(job)
    scenes = make_scenes(
        project,
        job,
        character,
        photos[0],
        [("flagged", 0.42), ("flagged", 0.5), ("passed", 0.97)],
        model=generator,
    )
    yield Held(project, job, character, photos, scenes)
    engines.cache_clear()


@pytest.fixture
def api(alice) -> APIClient:
    client = APIClient()
    client.force_authenticate(alice)
    return client


def _reload(*objects) -> None:
    for obj in objects:
        obj.refresh_from_db()


# --- the queue page -------------------------------------------------------------


def test_the_queue_shows_each_flagged_scene_with_what_the_check_saw(alice_client, held):
    flagged, _, passed = held.scenes

    html = alice_client.get(reverse("projects:review_queue")).content.decode()

    assert f'id="review-scene-{flagged.pk}"' in html
    assert f'id="review-scene-{passed.pk}"' not in html
    card = html[html.index(f'id="review-scene-{flagged.pk}"') :]
    card = card[: card.index("</article>")]
    assert reverse("jobs:scene_preview", args=[flagged.pk]) in card
    assert "Summer song" in card and f"render #{held.job.pk}" in card
    assert "<strong>0.420</strong>" in card and "needs 0.91" in card
    assert "seen in 67% of the frames" in card
    assert "someone else is shown from 1.00 s" in card
    assert "Someone else from frame 30 (1.00 s, score 0.420)" in card
    # Per frame: time, score and pass / fail against the threshold.
    assert card.count('class="frame verdict-') == 3
    assert 'class="frame verdict-fail first-failure"' in card
    for row in ("0.00 s", "0.953", "pass", "1.00 s", "fail", "1.97 s", "no face"):
        assert row in card
    # The attempts, and the three decisions.
    assert "<td>11</td>" in card and "<td>12</td>" in card and "0.301" in card
    for name in ("review_approve", "review_regenerate", "review_replace"):
        assert reverse(f"projects:{name}", args=[flagged.pk]) in card
    # Replace offers the project's other photo, not the one the scene has.
    assert f'<option value="{held.photos[1].pk}">second.png</option>' in card
    assert f'<option value="{held.photos[0].pk}">' not in card


def test_the_queue_leaves_out_other_users_and_failed_renders(
    alice_client, alice, charlie, held
):
    other = ProjectFactory(owner=charlie, title="Charlie video")
    charlies = JobFactory(project=other, status=Job.Status.REVIEW)
    make_scenes(
        other,
        charlies,
        create_character(charlie, "C"),
        stored_image_asset(other),
        [("flagged", 0.1)],
    )
    failed = JobFactory(project=held.project, status=Job.Status.FAILED)
    (stale,) = make_scenes(
        held.project, failed, held.character, held.photos[0], [("flagged", 0.2)]
    )

    html = alice_client.get(reverse("projects:review_queue")).content.decode()

    assert html.count('class="card review-card"') == 2
    assert "Charlie video" not in html
    assert f'id="review-scene-{stale.pk}"' not in html


def test_an_empty_queue_says_there_is_nothing_to_review(alice_client):
    html = alice_client.get(reverse("projects:review_queue")).content.decode()

    assert "Nothing to review" in html


# --- approve --------------------------------------------------------------------


def test_approving_one_of_two_flagged_scenes_keeps_the_render_waiting(
    alice_client, held
):
    first = held.scenes[0]

    response = alice_client.post(
        reverse("projects:review_approve", args=[first.pk]), follow=True
    )

    _reload(first, held.job)
    assert response.redirect_chain == [(reverse("projects:review_queue"), 303)]
    assert "Scene 0 of “Summer song” approved." in response.content.decode()
    assert first.review == "approved"
    assert held.job.status == Job.Status.REVIEW


def test_approving_the_last_flagged_scene_queues_the_render_again(alice_client, held):
    first, second, _ = held.scenes
    alice_client.post(reverse("projects:review_approve", args=[first.pk]))

    response = alice_client.post(
        reverse("projects:review_approve", args=[second.pk]), follow=True
    )

    _reload(second, held.job)
    assert second.review == "approved"
    assert (held.job.status, held.job.message) == (Job.Status.QUEUED, "reviewed")
    assert held.job.dispatched_at is None
    assert f"Render #{held.job.pk} goes on." in response.content.decode()


def test_approving_with_htmx_swaps_the_card_and_the_count_in_the_nav(
    alice_client, held
):
    first = held.scenes[0]

    response = alice_client.post(
        reverse("projects:review_approve", args=[first.pk]), headers=HTMX
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<article class="card review-card done"')
    assert f'id="review-scene-{first.pk}"' in html
    assert "<html" not in html
    assert 'id="nav-review-count"' in html and 'hx-swap-oob="true"' in html
    assert 'title="Scenes waiting for your review" hx-swap-oob="true">1</span>' in html


def test_a_scene_that_passed_cannot_be_approved(alice_client, held):
    passed = held.scenes[2]

    page = alice_client.post(reverse("projects:review_approve", args=[passed.pk]))
    card = alice_client.post(
        reverse("projects:review_approve", args=[passed.pk]), headers=HTMX
    )

    passed.refresh_from_db()
    assert (page.status_code, card.status_code) == (409, 409)
    assert "scene 2 is passed, not waiting for a review" in page.content.decode()
    assert "scene 2 is passed, not waiting for a review" in card.content.decode()
    assert card.content.decode().lstrip().startswith("<article")
    assert passed.review == "passed"


# --- regenerate -----------------------------------------------------------------


def test_regenerating_with_a_seed_makes_the_scene_again_in_the_held_render(
    alice_client, held
):
    first = held.scenes[0]

    response = alice_client.post(
        reverse("projects:review_regenerate", args=[first.pk]),
        {"seed": "1234"},
        follow=True,
    )

    _reload(first, held.job)
    assert (first.status, first.seed, first.review, first.gate) == (
        "pending",
        1234,
        "",
        {},
    )
    # Scene 1 is still flagged: the render waits for its decision too.
    assert held.job.status == Job.Status.REVIEW
    assert (
        f"Scene 0 will be made again in render #{held.job.pk} once its other"
        " flagged scenes are decided."
    ) in response.content.decode()

    last = alice_client.post(
        reverse("projects:review_regenerate", args=[held.scenes[1].pk]), follow=True
    )

    held.job.refresh_from_db()
    assert held.job.status == Job.Status.QUEUED
    assert f"Scene 1 is being made again in render #{held.job.pk}." in (
        last.content.decode()
    )


def test_regenerating_without_a_seed_draws_a_new_one(alice_client, held):
    first = held.scenes[0]

    alice_client.post(reverse("projects:review_regenerate", args=[first.pk]))

    first.refresh_from_db()
    assert first.status == "pending" and first.seed != 100


def test_a_seed_that_is_not_a_number_is_refused(alice_client, held):
    first = held.scenes[0]

    response = alice_client.post(
        reverse("projects:review_regenerate", args=[first.pk]),
        {"seed": "lucky"},
        headers=HTMX,
    )

    _reload(first, held.job)
    assert response.status_code == 400
    assert "the seed must be a whole number" in response.content.decode()
    assert (first.review, held.job.status) == ("flagged", Job.Status.REVIEW)


def test_regenerating_a_scene_of_a_finished_render_starts_a_new_render(
    alice_client, held
):
    Job.objects.filter(pk=held.job.pk).update(status=Job.Status.SUCCEEDED)
    first = held.scenes[0]

    response = alice_client.post(
        reverse("projects:review_regenerate", args=[first.pk]), {"seed": "77"}
    )

    first.refresh_from_db()
    child = Job.objects.get(parent=held.job)
    assert response.status_code == 303
    assert first.review == "redone"
    assert child.scenes.get(index=0).seed == 77
    assert child.status == Job.Status.QUEUED


# --- replace --------------------------------------------------------------------


def test_replacing_with_another_photo_of_the_project(alice_client, held):
    first = held.scenes[0]

    response = alice_client.post(
        reverse("projects:review_replace", args=[first.pk]),
        {"image": str(held.photos[1].pk)},
    )

    _reload(first, held.job)
    assert response.status_code == 303
    assert (first.image, first.status, first.review) == (
        held.photos[1],
        "pending",
        "",
    )
    assert held.job.status == Job.Status.REVIEW  # scene 1 is still flagged
    alice_client.post(reverse("projects:review_approve", args=[held.scenes[1].pk]))
    held.job.refresh_from_db()
    assert held.job.status == Job.Status.QUEUED


def test_replacing_with_an_uploaded_photo_adds_it_to_the_project_first(
    alice_client, held, sample_files
):
    first = held.scenes[0]

    response = alice_client.post(
        reverse("projects:review_replace", args=[first.pk]),
        {"image": "", "photo": photo_upload(sample_files["hopper"])},
        headers=HTMX,
    )

    first.refresh_from_db()
    added = held.project.assets.get(original_name="grace_hopper.jpg")
    assert response.status_code == 200
    assert added.kind == Asset.Kind.IMAGE
    assert first.image == added


def test_an_upload_that_is_not_a_photo_is_refused_with_the_reason(alice_client, held):
    first = held.scenes[0]

    response = alice_client.post(
        reverse("projects:review_replace", args=[first.pk]),
        {"photo": SimpleUploadedFile("evil.png", HTML_POLYGLOT, "image/png")},
        headers=HTMX,
    )

    first.refresh_from_db()
    assert response.status_code == 400
    assert "evil.png" in response.content.decode()
    assert held.project.assets.count() == 2
    assert (first.image, first.review) == (held.photos[0], "flagged")


def test_a_photo_of_another_project_cannot_replace_a_scene(alice, alice_client, held):
    elsewhere = stored_image_asset(ProjectFactory(owner=alice), color=(1, 1, 1))
    first = held.scenes[0]

    response = alice_client.post(
        reverse("projects:review_replace", args=[first.pk]),
        {"image": str(elsewhere.pk)},
    )

    first.refresh_from_db()
    assert response.status_code == 400
    assert "the project has no such photo" in response.content.decode()
    assert (first.image, first.review) == (held.photos[0], "flagged")


# --- the job page ---------------------------------------------------------------


def test_a_held_render_says_it_waits_for_a_review_and_shows_each_verdict(
    alice_client, held
):
    html = alice_client.get(reverse("jobs:detail", args=[held.job.pk])).content.decode()

    assert "Awaiting review" in html
    notice = html[html.index('id="job-review"') :]
    assert "2 scenes of this render" in notice
    assert reverse("projects:review_queue") in notice
    assert '<span class="badge review-flagged"' in html
    assert ">flagged 0.42</span>" in html and ">pass 0.97</span>" in html
    assert html.count("needs 0.91") == 3


def test_an_approved_scene_shows_its_badge_on_the_job_page(alice_client, held):
    Scene.objects.filter(pk=held.scenes[0].pk).update(review="approved")

    html = alice_client.get(reverse("jobs:detail", args=[held.job.pk])).content.decode()

    assert ">approved 0.42</span>" in html
    assert "1 scene of this render" in html


def test_the_nav_count_comes_from_the_context_processor(alice_client, held):
    before = alice_client.get(reverse("projects:review_queue")).content.decode()
    alice_client.post(reverse("projects:review_approve", args=[held.scenes[0].pk]))
    after = alice_client.get(reverse("projects:review_queue")).content.decode()

    assert 'title="Scenes waiting for your review">2</span>' in before
    assert 'title="Scenes waiting for your review">1</span>' in after


# --- the API --------------------------------------------------------------------


def test_the_api_lists_the_flagged_scenes_with_the_gate(api, held):
    body = api.get("/api/reviews/").json()

    assert body["count"] == 2
    first = body["results"][0]
    assert (first["id"], first["index"], first["review"]) == (
        held.scenes[0].pk,
        0,
        "flagged",
    )
    assert (first["job_status"], first["character_name"]) == ("review", "Ann")
    assert first["preview_url"] == reverse(
        "jobs:scene_preview", args=[held.scenes[0].pk]
    )
    gate = first["gate"]
    assert (gate["score"], gate["threshold"], gate["failure"]["frame"]) == (
        0.42,
        THRESHOLD,
        30,
    )
    assert [f["score"] for f in gate["frames"]] == [0.953, 0.42, None]
    assert [a["seed"] for a in gate["attempts"]] == [11, 12]


def test_the_api_approves_and_the_last_approval_requeues_the_render(api, held):
    first, second, passed = held.scenes

    one = api.post(f"/api/reviews/{first.pk}/approve/")
    held.job.refresh_from_db()
    status_after_one = held.job.status
    two = api.post(f"/api/reviews/{second.pk}/approve/")
    refused = api.post(f"/api/reviews/{passed.pk}/approve/")

    held.job.refresh_from_db()
    assert (one.status_code, two.status_code) == (200, 200)
    assert one.json()["review"] == "approved"
    assert status_after_one == Job.Status.REVIEW
    assert two.json()["job_status"] == "queued"
    assert held.job.status == Job.Status.QUEUED
    assert refused.status_code == 409
    assert "not waiting for a review" in refused.json()["detail"]
    # A decided scene has left the queue.
    assert api.get(f"/api/reviews/{first.pk}/").status_code == 404


def test_the_api_regenerates_with_the_seed_given(api, held):
    first, second, _ = held.scenes

    bad = api.post(f"/api/reviews/{first.pk}/regenerate/", {"seed": -1})
    seeded = api.post(
        f"/api/reviews/{first.pk}/regenerate/", {"seed": 4242}, format="json"
    )
    # The held render waits until every flagged scene has a decision.
    last = api.post(f"/api/reviews/{second.pk}/regenerate/", format="json")
    again = api.post(f"/api/reviews/{second.pk}/regenerate/", format="json")

    first.refresh_from_db()
    assert bad.status_code == 400
    assert seeded.status_code == 202
    assert (seeded.json()["id"], seeded.json()["status"]) == (held.job.pk, "review")
    assert (first.seed, first.status) == (4242, "pending")
    assert last.status_code == 202
    assert (last.json()["id"], last.json()["status"]) == (held.job.pk, "queued")
    assert again.status_code == 409
    assert "not waiting for a review" in again.json()["detail"]


def test_the_api_regenerates_with_a_new_seed_when_none_is_given(api, held):
    second = held.scenes[1]

    response = api.post(f"/api/reviews/{second.pk}/regenerate/", format="json")

    second.refresh_from_db()
    assert response.status_code == 202
    assert (second.status, second.review) == ("pending", "")
    assert second.seed != 101


def test_the_api_replaces_with_a_photo_of_the_same_project_only(api, alice, held):
    first = held.scenes[0]
    elsewhere = stored_image_asset(ProjectFactory(owner=alice), color=(2, 2, 2))

    wrong = api.post(
        f"/api/reviews/{first.pk}/replace/", {"image": elsewhere.pk}, format="json"
    )
    right = api.post(
        f"/api/reviews/{first.pk}/replace/",
        {"image": held.photos[1].pk},
        format="json",
    )

    first.refresh_from_db()
    assert wrong.status_code == 400
    assert right.status_code == 202
    assert first.image == held.photos[1]


def test_a_scene_whose_engine_ignores_the_seed_cannot_be_regenerated(api, held):
    photo_scene = held.scenes[0]
    Scene.objects.filter(pk=photo_scene.pk).update(model="photo")

    response = api.post(f"/api/reviews/{photo_scene.pk}/regenerate/", format="json")

    photo_scene.refresh_from_db()
    assert response.status_code == 409
    assert (
        "whatever the seed: replace its photo or approve it"
        in (response.json()["detail"])
    )
    assert (photo_scene.status, photo_scene.review) == ("done", "flagged")


def test_a_replacement_upload_for_a_scene_not_waiting_is_refused_unstored(
    alice_client, held, sample_files
):
    passed = held.scenes[2]
    before = held.project.assets.count()

    response = alice_client.post(
        reverse("projects:review_replace", args=[passed.pk]),
        {"image": "", "photo": photo_upload(sample_files["hopper"])},
    )

    assert response.status_code == 409
    assert held.project.assets.count() == before
