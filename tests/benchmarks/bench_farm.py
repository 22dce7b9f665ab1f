"""Overhead of the render farm: a 12-scene render on 2 worker processes against
the sum of its engines' own times, and the dispatch delay of each task.

    .venv/bin/python -m tests.benchmarks.bench_farm [--runs N] [--scenes N]
        [--preset NAME] [--scene-seconds S [--scene-engine MODULE:ATTR]]
        [--quick] [--logs DIR] [--database-url URL] [--redis-url URL]

Needs Postgres and Redis, like ``make test``. The defaults are a database of
its own, ``postgres://postgres@127.0.0.1:5432/bench_farm`` (created when
missing, migrated, then emptied with ``flush`` on every start: its name must
start with "bench"), and Redis database 11 (emptied on every start; the tests
use 7). Media, scratch and data folders are a temporary folder shared by this
process and the workers.

The material: the 60 s, 120 BPM song and the 12 photos (2400x1600 to
3000x2000 JPEGs) of ``bench_assembly``, uploaded to one project (style
"cinematic", mp4, preset ``--preset``, default "youtube" 1080p30). The target
duration is the one, searched in 0.5 s steps around 4 s a scene, for which
the planner (``workers.storyboard.planner.plan_storyboard``, as the ``plan``
task calls it) makes exactly ``--scenes`` scenes (default 12); the scene
count the farm really made is printed.

Two workers are started as ``manage.py worker --vram 0 --concurrency 1
--hostname wN@bench``, each in its own process group, and stopped at the end.
Before the timed runs, two duplicate renders are submitted at once and
thrown away, so that both workers have analysed a song, planned, made scenes
and assembled once (imports, numba, caches of the process). Then ``--runs``
times (default 3), alternating:

* E, the engines alone, in this process, no Celery and no database:
  ``workers.audio.analysis.analyze_audio`` of the song, the storyboard
  planner, the scene engine for each scene (``SceneRequest`` as the
  ``render_scene`` task makes it) and ``load_timeline`` + ``render_timeline``
  of the timeline ``projects.tasks.build_timeline`` makes of those scenes.
  E = analysis + plan + sum of the scenes + render.
* the farm: every ``CacheEntry`` row, every ``AudioAnalysis`` row and the
  stored scene files are deleted, the render is submitted with
  ``projects.pipeline.start_render`` (the scheduler sends it on commit), and
  the job is polled every 20 ms until it has succeeded. Everything below is
  read from the rows the farm wrote (one clock: all processes run here).

After the last run the same render is submitted once more without clearing
anything: "identical resubmission (cache)".

Formulas (per run; the table shows the median over the runs):

* W, the farm's wall time: ``Job.finished_at - Job.created_at`` (submit to
  succeeded; admission and the sending of the canvas included).
* T = sum over the job's ``TaskRun`` rows of ``seconds`` (each task from its
  record's start to its end, both workers).
* S = the engines' time measured inside the tasks: sum of ``Scene.seconds``
  plus ``job.params["timings"]`` of analyze, plan and assemble.
* B = T - S: the bookkeeping inside the tasks (records, progress, cache
  lookups and stores, storage copies).
* D = W - (seconds of the tasks on the critical path), the critical path
  being analyze, plan, every scene task of the worker that finished the last
  scene, and assemble: the dispatch delays (and the work around the records:
  claiming the job, publishing, the chord's join) between submit and
  success that no task record covers.
* farm overhead O = B + D = T - S + W - sum(critical path task seconds).
  Target: O / E < 10 %.
* Also printed: W / E (with 2 workers the scenes overlap, so W can be below
  E), and W - W_ideal, where W_ideal = analysis + plan + (the scenes' engine
  times of this run's E, handed in index order to whichever of 2 workers is
  free first) + render: what 2 workers with no farm at all would take.

Dispatch per task: for the scene tasks, enqueue to start
(``TaskRun.started_at - queued_at``, which includes waiting for a free
worker) and the dispatch gap ``started_at - max(queued_at, end of the
previous task on the same worker)`` (median and 90th percentile over the
scenes); for the stage tasks the gaps on the chain: submit to analyze start,
analyze end to plan start, plan end to the first scene's start, the last
scene's end to assemble start (the chord's join), assemble end to the job's
success.

``--scene-seconds S`` renders with the slow test engine
(``--scene-engine``, default ``tests.engines:SlowPhotoEngine``: the photo
engine plus a wait of ``STUDIO_TEST_ENGINE_SECONDS``), registered through
``STUDIO_SCENE_ENGINES`` in this process and the workers and given a
``ModelSpec`` ("bench-slow", 0 GB: the cpu queue), so the scenes take
GPU-like times. ``--quick``: a smoke run (1 run, 6 scenes, preset "preview",
unless given). Exit status 0 when O / E is under 10 % (always 0 with
``--quick``), 1 when not, 2 when a render failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from tests.benchmarks.bench_assembly import make_photos, make_song

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_farm"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
DEFAULT_SLOW_ENGINE = "tests.engines:SlowPhotoEngine"
SLOW_MODEL = "bench-slow"
WORKERS = ("w1@bench", "w2@bench")
TARGET = 0.10
SECONDS_PER_SCENE = 4.0  # where the duration search starts
# W is read from the job row (finished_at - created_at), so the wait can poll
# slowly and leave the CPU to the workers it measures.
POLL_S = 0.5
STYLE, FORMAT = "cinematic", "mp4"


# --------------------------------------------------------------------------
# Services and settings


def ensure_database(url: str) -> None:
    """Create the bench database when it is missing (connecting to 'postgres')."""
    import psycopg
    from psycopg import sql

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    if not name.startswith("bench"):
        raise SystemExit(f"refusing to use {name!r}: the bench database is flushed")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if not found:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}", flush=True)


def flush_redis(url: str) -> None:
    import redis

    db = urlparse(url).path.lstrip("/")
    if not db.isdigit() or db in ("0", "7"):
        raise SystemExit(f"refusing to flush Redis database {db or '0'} of {url}")
    redis.Redis.from_url(url).flushdb()


def configure(args: argparse.Namespace, root: Path) -> dict[str, str]:
    """Environment of this process and of the workers; sets up Django."""
    env = {
        "DJANGO_SETTINGS_MODULE": "studio_site.settings",
        "DATABASE_URL": args.database_url,
        "STUDIO_REDIS_URL": args.redis_url,
        "STUDIO_MEDIA_ROOT": str(root / "media"),
        "STUDIO_WORK_DIR": str(root / "work"),
        "STUDIO_DATA_DIR": str(root / "data"),
        "STUDIO_LOG_LEVEL": "INFO",
        "STUDIO_RUN_TASKS_IN_THREAD": "0",
    }
    if args.scene_seconds is not None:
        env["STUDIO_SCENE_ENGINES"] = args.scene_engine
        env["STUDIO_TEST_ENGINE_SECONDS"] = str(args.scene_seconds)
    else:
        env["STUDIO_SCENE_ENGINES"] = ""
    # This process logs warnings only; the workers' logs keep INFO.
    os.environ.update({**env, "STUDIO_LOG_LEVEL": "WARNING"})

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    return {**os.environ, **env}


# --------------------------------------------------------------------------
# Workers


@contextmanager
def workers(env: dict[str, str], logs: Path):
    """The two workers, each in its own process group; stopped at the end."""
    from studio_site.celery import app

    logs.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen] = []
    handles = []
    try:
        for name in WORKERS:
            log = (logs / f"{name.split('@')[0]}.log").open("w")
            handles.append(log)
            processes.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "worker", "--vram", "0",
                     "--concurrency", "1", "--hostname", name, "--loglevel", "INFO"],
                    cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )  # fmt: skip
        deadline = time.monotonic() + 90
        answered: set[str] = set()
        while answered != set(WORKERS):
            for process, name in zip(processes, WORKERS, strict=True):
                if process.poll() is not None:
                    raise SystemExit(f"worker {name} exited:\n{log_tail(logs, name)}")
            if time.monotonic() > deadline:
                raise SystemExit(f"workers {set(WORKERS) - answered} did not answer")
            for reply in app.control.ping(destination=list(WORKERS), timeout=0.5):
                answered.update(reply)
        yield
    finally:
        for process in processes:
            _stop_group(process)
        for log in handles:
            log.close()


def _stop_group(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def log_tail(logs: Path, name: str, lines: int = 40) -> str:
    path = logs / f"{name.split('@')[0]}.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --------------------------------------------------------------------------
# Material and the project


def make_project(folder: Path, preset: str):
    """A user and a project with the song and the 12 photos uploaded."""
    from django.contrib.auth import get_user_model

    from projects.models import Project
    from projects.uploads import add_asset_from_path

    folder.mkdir(parents=True, exist_ok=True)
    user = get_user_model().objects.create_user("bench-farm")
    project = Project.objects.create(
        owner=user,
        title="Farm benchmark",
        style=STYLE,
        preset=preset,
        output_format=FORMAT,
    )
    for photo in make_photos(folder):
        add_asset_from_path(project, photo)
    add_asset_from_path(project, make_song(folder))
    return project


def contract_of(result) -> dict[str, Any]:
    """The analysis as the plan task sees it (``AudioAnalysis.to_contract``)."""
    from projects.models import AudioAnalysis

    return AudioAnalysis(**result.to_dict()).to_contract()


def plan_scenes(contract: dict, duration: float, fps: int, images: int) -> Any:
    """The storyboard planner, as the render's plan stage calls it."""
    from workers.storyboard.planner import Photo, plan_storyboard
    from workers.storyboard.styles import default_styles

    return plan_storyboard(
        contract,
        duration=duration,
        fps=fps,
        photos=[Photo(i) for i in range(images)],
        style=default_styles()[STYLE],
    )


def choose_duration(contract: dict, scenes: int, fps: int, images: int) -> float:
    """A target duration for which the planner makes exactly ``scenes`` scenes
    (else the one that comes closest)."""
    song = float(contract["duration"])
    candidates = np.arange(4.0, song + 0.25, 0.5)
    order = sorted(candidates, key=lambda d: abs(d - scenes * SECONDS_PER_SCENE))
    best: tuple[int, float] | None = None
    for duration in order:
        d = min(float(duration), song)
        n = len(plan_scenes(contract, d, fps, images).shots)
        if n == scenes:
            return d
        if best is None or abs(n - scenes) < abs(best[0] - scenes):
            best = (n, d)
    assert best is not None
    print(f"no duration gives {scenes} scenes; using {best[1]} s ({best[0]} scenes)")
    return best[1]


# --------------------------------------------------------------------------
# E: the engines alone


def engines_alone(project, model_key: str, duration: float) -> dict[str, Any]:
    """Each engine of the render, called directly and timed."""
    from django.conf import settings
    from django.core.files.storage import default_storage

    from projects.casting import DEFAULT_FOCUS
    from projects.models import Scene
    from projects.scene_engines import engine_for, model_spec
    from projects.tasks import build_timeline
    from workers.assembly.presets import get_preset
    from workers.assembly.render import render_timeline
    from workers.assembly.timeline import load_timeline
    from workers.audio.analysis import analyze_audio
    from workers.scenes import SceneRequest

    preset = get_preset(project.preset)
    images = [Path(default_storage.path(a.file.name)) for a in project.images()]
    music = project.music()
    assert music is not None
    song = Path(default_storage.path(music.file.name))
    engine = engine_for(model_spec(model_key))
    times: dict[str, Any] = {}

    start = time.perf_counter()
    result = analyze_audio(song, max_seconds=settings.STUDIO_MAX_AUDIO_SECONDS)
    times["analyze"] = time.perf_counter() - start
    contract = contract_of(result)

    start = time.perf_counter()
    planned = plan_scenes(
        contract, min(duration, result.duration), preset.fps, len(images)
    ).shots
    times["plan"] = time.perf_counter() - start

    scenes = [
        Scene(
            index=p.index,
            start=p.start(preset.fps),
            end=p.end(preset.fps),
            start_frame=p.start_frame,
            end_frame=p.end_frame,
            move=p.move,
            model=model_key,
            transition=p.transition,
            transition_frames=p.transition_frames,
            prompt=p.prompt.prompt if p.prompt else "",
            motion=p.motion,
            grade=p.grade or "",
            grade_intensity=p.grade_intensity,
        )
        for p in planned
    ]
    sources = [images[p.photo] for p in planned]
    scene_times = []
    with tempfile.TemporaryDirectory(prefix="bench-farm-engines-") as tmp:
        folder = Path(tmp)
        for scene, source in zip(scenes, sources, strict=True):
            out = folder / f"scene-{scene.index}"
            out.mkdir()
            request = SceneRequest(
                index=scene.index,
                image=source,
                out_dir=out,
                width=preset.width,
                height=preset.height,
                fps=preset.fps,
                frames=scene.frames,
                move=scene.move,
                focus=DEFAULT_FOCUS,
                seed=scene.seed,
            )
            start = time.perf_counter()
            engine.render(request)
            scene_times.append(time.perf_counter() - start)
        doc = build_timeline(
            scenes,
            sources,
            song=song,
            output=preset,
            fmt=FORMAT,
            beats=result.beats,
        )
        start = time.perf_counter()
        report = render_timeline(
            load_timeline(doc),
            folder / f"video.{FORMAT}",
            base_dir=folder,
            thumbnail=folder / "thumbnail.jpg",
            tags={"title": project.title},
        )
        times["render"] = time.perf_counter() - start
    times["scenes"] = sum(scene_times)
    times["scene_list"] = scene_times
    times["count"] = len(scenes)
    times["frames"] = report.frames
    times["E"] = times["analyze"] + times["plan"] + times["scenes"] + times["render"]
    return times


# --------------------------------------------------------------------------
# The farm


def clear_cache() -> None:
    """Nothing a render could be served from: cache entries, analyses and the
    stored scene files."""
    from django.conf import settings

    from media_jobs.models import CacheEntry
    from projects.models import AudioAnalysis

    CacheEntry.objects.all().delete()
    AudioAnalysis.objects.all().delete()
    shutil.rmtree(Path(settings.MEDIA_ROOT) / "scenes", ignore_errors=True)


def submit(project, model_key: str, *, duplicate: bool = False):
    from projects.pipeline import start_render

    return start_render(project, model=model_key, allow_duplicate=duplicate)


def wait(job_ids: list[int], timeout: float, logs: Path) -> None:
    from media_jobs.models import Job

    deadline = time.monotonic() + timeout
    while True:
        rows = dict(Job.objects.filter(pk__in=job_ids).values_list("pk", "status"))
        if all(status not in Job.ACTIVE_STATUSES for status in rows.values()):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"jobs {rows} not finished after {timeout} s")
        time.sleep(POLL_S)
    for job in Job.objects.filter(pk__in=job_ids):
        if job.status != Job.Status.SUCCEEDED:
            tails = "\n".join(f"--- {n}\n{log_tail(logs, n)}" for n in WORKERS)
            print(f"job {job.pk} {job.status}: {job.error}\n{tails}", file=sys.stderr)
            raise SystemExit(2)


def _t(value) -> float:
    return value.timestamp()


def farm_metrics(job_id: int) -> dict[str, Any]:
    """What the farm's rows say about one finished render (see the docstring)."""
    from media_jobs.models import Job, JobStage, TaskRun
    from projects.models import Scene

    job = Job.objects.get(pk=job_id)
    runs = {run.key: run for run in TaskRun.objects.filter(job=job)}
    scenes = [r for r in runs.values() if r.stage == "scenes"]
    scene_rows = list(Scene.objects.filter(job=job))
    timings = job.params.get("timings", {})
    analyze, plan, assemble = runs["analyze"], runs["plan"], runs["assemble"]

    wall = _t(job.finished_at) - _t(job.created_at)
    task_seconds = sum(r.seconds or 0.0 for r in runs.values())
    inside = sum(s.seconds or 0.0 for s in scene_rows) + sum(
        float(timings.get(stage, 0.0)) for stage in ("analyze", "plan", "assemble")
    )
    last = max(scenes, key=lambda r: r.finished_at)
    path = [analyze, plan, *(r for r in scenes if r.worker == last.worker), assemble]
    dispatch = wall - sum(r.seconds or 0.0 for r in path)

    # Scene tasks: enqueue to start, and the gap after the worker was free.
    by_worker: dict[str, list] = {}
    for run in runs.values():
        by_worker.setdefault(run.worker, []).append(run)
    gaps = []
    for run in scenes:
        before = [
            r.finished_at
            for r in by_worker[run.worker]
            if r.finished_at is not None and r.finished_at <= run.started_at
        ]
        ready = max([run.queued_at, *before])
        gaps.append(_t(run.started_at) - _t(ready))
    waits = [_t(r.started_at) - _t(r.queued_at) for r in scenes]
    first = min(scenes, key=lambda r: r.started_at)
    unfinished = list(
        JobStage.objects.filter(job=job)
        .exclude(status="done")
        .values_list("name", "status")
    )
    return {
        "W": wall,
        "T": task_seconds,
        "S": inside,
        "B": task_seconds - inside,
        "D": dispatch,
        "O": task_seconds - inside + dispatch,
        "count": len(scene_rows),
        "cached": sum(1 for r in runs.values() if r.cached),
        "tasks": len(runs),
        "workers": sorted({r.worker for r in runs.values()}),
        "scene_wait": waits,
        "scene_gap": gaps,
        "submit_to_analyze": _t(analyze.started_at) - _t(job.created_at),
        "analyze_to_plan": _t(plan.started_at) - _t(analyze.finished_at),
        "plan_to_scene": _t(first.started_at) - _t(plan.finished_at),
        "scenes_to_assemble": _t(assemble.started_at) - _t(last.finished_at),
        "assemble_to_done": _t(job.finished_at) - _t(assemble.finished_at),
        "unfinished_stages": unfinished,
        "timings": timings,
    }


def ideal_wall(engines: dict[str, Any], workers: int = len(WORKERS)) -> float:
    """Analysis + plan + the scenes handed in order to whichever worker is
    free first + render: 2 workers with no farm around them."""
    free = [0.0] * workers
    for seconds in engines["scene_list"]:
        i = free.index(min(free))
        free[i] += seconds
    return engines["analyze"] + engines["plan"] + max(free) + engines["render"]


def warm_up(project, model_key: str, logs: Path, timeout: float) -> None:
    """Two duplicate renders at once, so each worker runs every kind of task
    once; then nothing of them is left to be served from."""
    jobs = [submit(project, model_key, duplicate=True) for _ in WORKERS]
    wait([job.pk for job in jobs], timeout, logs)
    clear_cache()


# --------------------------------------------------------------------------
# Report


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _p90(values: list[float]) -> float:
    return float(np.percentile(values, 90))


def print_report(
    args: argparse.Namespace,
    engines: list[dict[str, Any]],
    farm: list[dict[str, Any]],
    cached: dict[str, Any],
    duration: float,
    variant: str,
) -> bool:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    runs = len(farm)
    count = farm[0]["count"]
    print(
        f"\n{count}-scene render ({engines[0]['count']} planned in-process), "
        f"{duration:g} s, preset {args.preset}, {FORMAT}, style {STYLE}; "
        f"{engines[0]['frames']} frames\n"
        f"scene engine: {variant}\n"
        f"farm: {len(WORKERS)} workers (manage.py worker --vram 0 --concurrency 1), "
        f"Postgres + Redis on this machine; {cores or os.cpu_count()} CPU cores; "
        f"{runs} run(s), medians\n"
    )
    head = f"{'':<52} {'median s':>9} {'min s':>7} {'max s':>7} {'/ E':>6}"
    print(head)
    print("-" * len(head))
    e_median = _median([e["E"] for e in engines])

    def row(label: str, values: list[float], ratio: bool = True) -> None:
        m = _median(values)
        r = f"{m / e_median:>6.1%}" if ratio else ""
        print(f"{label:<52} {m:>9.3f} {min(values):>7.3f} {max(values):>7.3f} {r:>6}")

    row("E  engines alone, in-process (sum)", [e["E"] for e in engines])
    row("     analyze_audio", [e["analyze"] for e in engines])
    row("     plan (storyboard)", [e["plan"] for e in engines])
    row(f"     scene engine x{count} (sum)", [e["scenes"] for e in engines])
    row("     load_timeline + render_timeline", [e["render"] for e in engines])
    row("W  farm wall: submit -> succeeded", [f["W"] for f in farm])
    row(
        "   ideal wall on 2 workers, no farm (W_ideal)",
        [ideal_wall(e) for e in engines],
    )
    row(
        "   W - W_ideal",
        [f["W"] - ideal_wall(e) for f, e in zip(farm, engines, strict=True)],
    )
    row("T  sum of task run times (TaskRun.seconds)", [f["T"] for f in farm])
    row("S  engine time inside the tasks", [f["S"] for f in farm])
    row("B  bookkeeping inside the tasks (T - S)", [f["B"] for f in farm])
    row("D  dispatch on the critical path", [f["D"] for f in farm])
    row("O  farm overhead (B + D)", [f["O"] for f in farm])
    row("identical resubmission (cache): wall", [cached["W"]])
    print(
        f"(resubmission: {cached['cached']} of {cached['tasks']} tasks from the "
        f"cache; S / E per run: "
        f"{[round(f['S'] / e['E'], 3) for f, e in zip(farm, engines, strict=True)]}; "
        f"workers used: {farm[0]['workers']})"
    )

    print(f"\n{'dispatch per task':<52} {'median s':>9} {'p90 s':>7} {'max s':>7}")
    print("-" * len(head))

    def spread(label: str, key: str) -> None:
        per_run = [(_median(f[key]), _p90(f[key]), max(f[key])) for f in farm]
        m, p, x = (_median([v[i] for v in per_run]) for i in range(3))
        print(f"{label:<52} {m:>9.3f} {p:>7.3f} {x:>7.3f}")

    def single(label: str, key: str) -> None:
        values = [f[key] for f in farm]
        print(f"{label:<52} {_median(values):>9.3f} {'':>7} {max(values):>7.3f}")

    spread("scene: enqueue -> start (incl. waiting for a worker)", "scene_wait")
    spread("scene: worker free (or enqueued) -> start", "scene_gap")
    single("submit -> analyze start", "submit_to_analyze")
    single("analyze end -> plan start", "analyze_to_plan")
    single("plan end -> first scene start", "plan_to_scene")
    single("last scene end -> assemble start (chord join)", "scenes_to_assemble")
    single("assemble end -> job succeeded", "assemble_to_done")

    if count != args.scenes:
        print(f"\nnote: the farm made {count} scenes, not {args.scenes}")
    stages = {tuple(map(tuple, f["unfinished_stages"])) for f in farm}
    if any(stages):
        print(f"note: stages not marked done after success: {sorted(stages)[-1]}")
    ratio = _median([f["O"] / e["E"] for f, e in zip(farm, engines, strict=True)])
    ok = ratio < TARGET
    print(
        f"\n{'PASS' if ok else 'FAIL'}  farm overhead O / E = {ratio:.1%} "
        f"< {TARGET:.0%} (median of the runs' ratios; W / E = "
        f"{_median([f['W'] / e['E'] for f, e in zip(farm, engines, strict=True)]):.2f})"
    )
    return ok


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_farm")
    parser.add_argument("--runs", type=int, default=None, help="timed runs (3)")
    parser.add_argument("--scenes", type=int, default=None, help="scenes (12)")
    parser.add_argument("--preset", default=None, help="output preset (youtube)")
    parser.add_argument(
        "--scene-seconds",
        type=float,
        default=None,
        help="use the slow test engine, waiting this long per scene",
    )
    parser.add_argument("--scene-engine", default=DEFAULT_SLOW_ENGINE)
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 run, 6 scenes, preview"
    )
    parser.add_argument("--logs", type=Path, help="keep the worker logs here")
    parser.add_argument("--timeout", type=float, default=900.0, help="per render")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args(argv)
    args.runs = max(args.runs or (1 if args.quick else 3), 1)
    args.scenes = args.scenes or (6 if args.quick else 12)
    args.preset = args.preset or ("preview" if args.quick else "youtube")

    ensure_database(args.database_url)
    flush_redis(args.redis_url)
    with tempfile.TemporaryDirectory(prefix="bench-farm-") as tmp:
        root = Path(tmp)
        env = configure(args, root)
        logs = args.logs or root / "logs"

        from django.core.files.storage import default_storage

        from media_jobs.models import ModelSpec
        from projects.scene_engines import DEFAULT_MODEL, engines
        from workers.assembly.presets import get_preset
        from workers.audio.analysis import analyze_audio

        model_key = DEFAULT_MODEL
        variant = "photo (workers.scenes.photo.PhotoEngine)"
        if args.scene_seconds is not None:
            name = [e for e in engines() if e != "photo"]
            if not name:
                raise SystemExit(f"{args.scene_engine} did not register an engine")
            ModelSpec.objects.update_or_create(
                key=SLOW_MODEL,
                defaults={
                    "name": "Benchmark: photo engine with a wait",
                    "kind": ModelSpec.Kind.SCENE,
                    "engine": name[0],
                    "revision": "1",
                    "vram_gb": 0.0,
                },
            )
            model_key = SLOW_MODEL
            variant = (
                f"slow: {args.scene_engine} (engine {name[0]!r}), "
                f"STUDIO_TEST_ENGINE_SECONDS={args.scene_seconds:g}"
            )

        print("making the photos, the song and the project ...", flush=True)
        project = make_project(root / "material", args.preset)
        preset = get_preset(args.preset)
        music = project.music()
        assert music is not None
        song = Path(default_storage.path(music.file.name))
        result = analyze_audio(song)  # also the warm-up of numba in this process
        duration = choose_duration(
            contract_of(result), args.scenes, preset.fps, project.images().count()
        )
        project.target_duration = duration
        project.save(update_fields=["target_duration"])
        print(f"warming up: the engines alone ({duration:g} s) ...", flush=True)
        engines_alone(project, model_key, duration)

        engine_runs: list[dict[str, Any]] = []
        farm_runs: list[dict[str, Any]] = []
        with workers(env, logs):
            print("warming up: two renders at once on the workers ...", flush=True)
            warm_up(project, model_key, logs, args.timeout)
            for i in range(args.runs):
                print(f"run {i + 1} of {args.runs}: engines alone ...", flush=True)
                engine_runs.append(engines_alone(project, model_key, duration))
                print(f"run {i + 1} of {args.runs}: farm ...", flush=True)
                clear_cache()
                time.sleep(1.0)  # let the workers settle after the last job
                job = submit(project, model_key)
                wait([job.pk], args.timeout, logs)
                farm_runs.append(farm_metrics(job.pk))
            print("identical resubmission (cache) ...", flush=True)
            time.sleep(1.0)
            job = submit(project, model_key)
            wait([job.pk], args.timeout, logs)
            cached = farm_metrics(job.pk)
        ok = print_report(args, engine_runs, farm_runs, cached, duration, variant)
    return 0 if ok or args.quick else 1


if __name__ == "__main__":
    raise SystemExit(main())
