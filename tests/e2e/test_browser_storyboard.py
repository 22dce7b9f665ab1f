"""Quick mode and the storyboard in a real browser: a creator gives photos,
a song, a style and a duration, and gets a planned storyboard and a video;
then edits one scene, which turns the project to Advanced mode. The web
server (daphne) and the Celery worker are real processes on Redis."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from media_jobs.models import Job
from projects.models import Project, Shot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_quick_mode_plans_a_storyboard_from_style_and_duration_alone(
    alice,
    sample_files,
    web_server,
    worker_media,
    browser_page,
    tmp_path,
):
    page = browser_page
    page.goto(f"{web_server}/projects/quick/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(f"{web_server}/projects/quick/")

    form = page.locator("#quick-form")
    form.locator("input[name=photos]").set_input_files(
        [str(sample_files["astronaut"]), str(sample_files["hopper"])]
    )
    form.locator("input[name=song]").set_input_files(str(sample_files["song"]))
    form.locator("input[name=style][value=neon_noir]").check()
    form.locator("input[name=duration]").fill("6")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/storyboard/")
    page.wait_for_selector("#shots tr.shot-row", timeout=120_000)

    prompts = page.locator("#shots .shot-prompt").all_inner_texts()
    assert len(prompts) >= 2
    assert all("neon noir" in text for text in prompts)

    page.locator("#shot-0 a", has_text="Edit").click()
    page.wait_for_selector("#shot-edit")
    page.select_option("select[name=move]", "static")
    page.click("#shot-edit button[type=submit]")
    page.wait_for_url("**/storyboard/")
    page.wait_for_selector("#shot-0 .badge", timeout=10_000)
    shot = Path(os.environ.get("STUDIO_E2E_SCREENSHOTS", tmp_path)) / "storyboard.png"
    page.screenshot(path=str(shot), full_page=True)

    project = Project.objects.get(owner=alice)
    render = Job.objects.get(project=project, kind=Job.Kind.RENDER)
    assert render.status in (Job.Status.SUCCEEDED, Job.Status.RUNNING)
    assert project.style == "neon_noir"
    assert project.mode == Project.Mode.ADVANCED
    edited = Shot.objects.get(storyboard__project=project, index=0)
    assert (edited.move, edited.edited) == ("static", True)
    assert "edited" in page.locator("#shot-0").inner_text()
