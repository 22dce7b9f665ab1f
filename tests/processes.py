"""Real processes beside the test process: a Celery worker on Redis and the
ASGI web server, sharing the test database and a media folder with the tests.
Registered for every test folder by ``pytest_plugins`` in tests/conftest.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from studio_site.celery import app as celery_app


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
    }


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
