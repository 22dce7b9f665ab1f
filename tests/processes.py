"""Real processes beside the test process: a Celery worker on Redis and the
ASGI web server, sharing the test database and a media folder with the tests;
for the farm's tests, a private ``redis-server`` that can be restarted and
``manage.py worker`` processes that can be killed. Registered for every test
folder by ``pytest_plugins`` in tests/conftest.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection

from studio_site.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent
TEST_SCENE_ENGINES = "tests.engines:SlowPhotoEngine"
# The session worker also knows the generator that loses its character for
# the seeds in STUDIO_TEST_DRIFT_SEEDS (tests/engines.py), for the
# consistency gate's farm test; its impostor is this file of the shared folder.
DRIFT_ENGINE = "tests.engines:DriftingEngine"
IMPOSTOR = "impostor.jpg"


def wait_for(
    predicate: Callable[[], Any],
    what: str = "the condition",
    *,
    timeout: float = 30.0,
    logs: Callable[[], str] = lambda: "",
) -> Any:
    """The first true value ``predicate`` returns, polled every 0.2 s; an
    AssertionError naming ``what`` (and the processes' logs) after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:g} s\n{logs()}")


def _require_services() -> None:
    if not settings.REDIS_URL:
        pytest.skip("integration tests need STUDIO_REDIS_URL (make test sets it)")
    if connection.vendor != "postgresql":
        pytest.skip(
            "integration tests need DATABASE_URL on Postgres (make test sets it)"
        )


@pytest.fixture(scope="session")
def shared_media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("shared-media")


def _process_env(shared_media: Path) -> dict[str, str]:
    db = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "STUDIO_REDIS_URL": settings.REDIS_URL,
        "STUDIO_MEDIA_ROOT": str(shared_media / "media"),
        "STUDIO_WORK_DIR": str(shared_media / "work"),
        "STUDIO_LOG_LEVEL": "INFO",
        # The slow stand-in for a model-backed engine (tests/engines.py): a
        # worker that plans a render must know every engine its scenes name.
        "STUDIO_SCENE_ENGINES": f"{TEST_SCENE_ENGINES},{DRIFT_ENGINE}",
        "STUDIO_TEST_DRIFT_SEEDS": _drifting_seeds(),
        "STUDIO_TEST_IMPOSTOR": str(shared_media / IMPOSTOR),
    }


def _drifting_seeds() -> str:
    """Seed 0 and the seeds of its next attempts: a scene of the drifting
    engine planned with seed 0 never passes the consistency gate."""
    from projects.scene_making import next_seed

    return ",".join(str(s) for s in (0, next_seed(0, 2), next_seed(0, 3)))


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, shared_media):
    """Start ``celery worker`` as a separate process and wait until it answers."""
    _require_services()
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    env = _process_env(shared_media)
    log = (shared_media / "worker.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "studio_site", "worker",
            "-Q", "cpu,io", "--concurrency", "2", "--pool", "prefork",
            "--without-gossip", "--without-mingle", "--loglevel", "INFO",
            "--hostname", f"test-{os.getpid()}@%h",
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(
                    f"worker exited: {(shared_media / 'worker.log').read_text()}"
                )
            if celery_app.control.ping(timeout=0.5):
                break
        else:
            pytest.fail("worker did not answer a ping within 60 s")
        yield process
    finally:
        _stop(process)
        log.close()
        _close_other_connections(django_db_blocker)


def _close_other_connections(django_db_blocker) -> None:
    """Drop the stopped processes' database sessions now, so the test database
    can be removed at the end of the run without waiting for Postgres to
    notice they are gone."""
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(scope="session")
def web_server(celery_worker_process, shared_media) -> str:
    """The ASGI app (HTTP + websockets) under daphne; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**_process_env(shared_media), "STUDIO_DEBUG": "1"}
    log = (shared_media / "web.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "studio_site.asgi:application"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"web server exited: {(shared_media / 'web.log').read_text()}"
                )
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                pytest.fail("web server did not listen within 60 s")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)
        log.close()


@pytest.fixture
def worker_media(settings, shared_media, celery_worker_process):
    """Point this test's storage at the folder the worker writes to."""
    settings.MEDIA_ROOT = shared_media / "media"
    settings.STUDIO_WORK_DIR = shared_media / "work"
    return shared_media


# --- the farm's tests: a private Redis and ``manage.py worker`` processes ----


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class RedisServer:
    """A ``redis-server`` of the test's own, on a free port, keeping its data
    in an append-only file in ``folder`` so a restart finds it again."""

    binary = "/usr/bin/redis-server"

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log = folder / "redis.log"
        self.starts = 0

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        if not Path(self.binary).exists():
            pytest.skip(f"the farm's tests need {self.binary} (Debian: redis-server)")
        self.starts += 1
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--dir", str(self.folder), "--appendonly", "yes",
                 "--appendfsync", "always", "--save", "", "--protected-mode", "no"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"redis-server exited: {tail(self.log)}")
            try:
                # Loading the append-only file answers LOADING: not ready yet.
                if client.ping():
                    return
            except redis.exceptions.RedisError:
                pass
            time.sleep(0.05)
        pytest.fail(f"redis-server did not answer within 20 s: {tail(self.log)}")

    def stop(self) -> None:
        """SHUTDOWN (which writes the append-only file out), then wait."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            redis.Redis(port=self.port).shutdown()
        except redis.exceptions.RedisError:
            self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def private_redis(tmp_path) -> Iterator[RedisServer]:
    _require_services()
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Worker:
    """One ``manage.py worker`` process, leader of its own process group
    (its main process and its pool children)."""

    def __init__(self, name: str, process: subprocess.Popen, log: Path, url: str):
        self.name = name
        self.process = process
        self.log = log
        self.broker_url = url

    def tail(self, lines: int = 40) -> str:
        return f"--- {self.name} ({self.log.name}) ---\n{tail(self.log, lines)}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole group: no warm shutdown, no acknowledgement, no
        cleanup, as when a machine loses power or the OOM killer strikes."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=20)

    def stop(self) -> None:
        if not self.alive():
            self.kill()  # its pool children may have outlived it
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.kill()


class Farm:
    """Starts ``manage.py worker`` processes on one broker, sharing the test's
    database, media folder and scratch folder; stops them all at the end."""

    def __init__(self, folder: Path, env: dict[str, str], broker_url: str):
        self.folder = folder
        self.env = env
        self.broker_url = broker_url
        self.workers: list[Worker] = []

    def start(self, *args: str, name: str, env: dict[str, str] | None = None) -> Worker:
        """Start ``manage.py worker ARGS --hostname NAME`` (not waiting: see
        ``wait_ready``)."""
        log = self.folder / f"{name.replace('@', '-')}.log"
        data_dir = self.folder / f"data-{name.replace('@', '-')}"
        data_dir.mkdir(parents=True, exist_ok=True)
        process_env = {
            **self.env,
            # Each worker its own beat schedule file (--beat writes it there).
            "STUDIO_DATA_DIR": str(data_dir),
            **(env or {}),
        }
        with log.open("a") as handle:
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "worker", *args,
                 "--hostname", name],
                cwd=ROOT, env=process_env, stdout=handle, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        worker = Worker(name, process, log, process_env["STUDIO_REDIS_URL"])
        self.workers.append(worker)
        return worker

    def wait_ready(self, *workers: Worker, timeout: float = 90.0) -> None:
        """Wait until every worker says it is ready (it has connected to the
        broker and consumes its queues)."""
        waiting = {worker.name: worker for worker in workers}
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            for name, worker in list(waiting.items()):
                if not worker.alive():
                    pytest.fail(f"worker {name} exited:\n{worker.tail()}")
                text = worker.log.read_text(errors="replace")
                if f"{name} ready." in text:
                    waiting.pop(name)
            time.sleep(0.1)
        if waiting:
            pytest.fail(
                f"workers {sorted(waiting)} were not ready within {timeout:g} s:\n"
                + self.logs()
            )

    def logs(self, lines: int = 40) -> str:
        return "\n".join(worker.tail(lines) for worker in self.workers)

    def stop(self) -> None:
        """SIGTERM every worker at once (a warm shutdown), then SIGKILL what
        is left of them after 5 s."""
        for worker in self.workers:
            if worker.alive():
                try:
                    os.killpg(worker.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for worker in self.workers:
            try:
                worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            worker.kill()


@pytest.fixture
def farm_factory(transactional_db, django_db_blocker, settings, tmp_path):
    """``farm_factory(broker_url, **env)`` makes a ``Farm`` whose workers use
    this test's database, media and scratch folders; every worker is stopped
    (and its database sessions ended) before the test's tables are flushed."""
    _require_services()
    farms: list[Farm] = []

    def make(broker_url: str, **env: str) -> Farm:
        base = {
            **_process_env(Path(settings.MEDIA_ROOT).parent),
            "STUDIO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "STUDIO_WORK_DIR": str(settings.STUDIO_WORK_DIR),
            "STUDIO_REDIS_URL": broker_url,
            **env,
        }
        folder = tmp_path / f"farm-{len(farms)}"
        folder.mkdir()
        farm = Farm(folder, base, broker_url)
        farms.append(farm)
        return farm

    try:
        yield make
    finally:
        for farm in farms:
            farm.stop()
        if farms:
            _close_other_connections(django_db_blocker)
