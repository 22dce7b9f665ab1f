"""A creator's whole visit in a real browser (Debian's Chromium driven by
Playwright): log in, make a project, upload photos and a song, press Render
and watch the job page fill up live over its websocket until the video plays.
The web server (daphne) and the Celery worker are real processes on Redis."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from media_jobs.models import Job
from projects.models import Render

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_creator_renders_a_video_and_watches_it_arrive_live(
    alice, sample_files, web_server, worker_media, browser_page, tmp_path
):
    page = browser_page
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(f)))

    page.goto(f"{web_server}/projects/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(f"{web_server}/projects/")

    form = page.locator("#project-create")
    form.locator("input[name=title]").fill("Live in the browser")
    form.locator("input[name=target_duration]").fill("6")
    form.locator("select[name=preset]").select_option("preview")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#assets")

    page.set_input_files(
        "input[name=files]",
        [str(sample_files[name]) for name in ("astronaut", "hopper", "song")],
    )
    page.click("#assets form.upload button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#assets li.asset').length === 3")

    page.click("#render-panel button[type=submit]")
    page.wait_for_url("**/jobs/*/")
    page.wait_for_selector("[data-status=succeeded]", timeout=120_000)
    page.wait_for_selector("#result video", timeout=20_000)
    shot = Path(os.environ.get("STUDIO_E2E_SCREENSHOTS", tmp_path)) / "job-finished.png"
    page.screenshot(path=str(shot), full_page=True)
    percent = page.locator(".job-progress .percent").inner_text()
    video_src = page.evaluate("document.querySelector('#result video').currentSrc")
    status = page.request.get(video_src).status

    job = Job.objects.get(project__title="Live in the browser", kind=Job.Kind.RENDER)
    assert job.status == Job.Status.SUCCEEDED
    assert Render.objects.filter(job=job).exists()
    assert percent == "100%"
    assert status == 200
    # The page was updated by pushed progress, not only by its polling fallback.
    pushed = [f for f in frames if "job-progress" in str(f)]
    assert len(pushed) >= 3
    assert 'data-status="succeeded"' in str(pushed[-1])

    # Quick mode found the lead in the photos: the gallery shows her face.
    page.goto(f"{web_server}/characters/")
    tile = page.locator(".character-tile", has_text="Lead of Live in the browser")
    tile.wait_for()
    face = tile.locator("img.face")
    face.wait_for()
    assert face.evaluate("img => img.complete && img.naturalWidth") == 224
    assert "Identity ready" in tile.inner_text()
