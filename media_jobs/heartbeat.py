"""Worker heartbeats: each worker process started by ``manage.py worker``
reports its queues, device, free GPU memory and loaded models every
``STUDIO_HEARTBEAT_S`` seconds; the planner takes a queue as served while a
worker on it has reported within ``STUDIO_HEARTBEAT_STALE_S``.

The worker command puts its name and queues in the environment of the
process it becomes; each pool process (they fork from it) starts a reporting
thread when it starts (Celery's ``worker_process_init``), so the report
describes the process that holds the models.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery.signals import worker_process_init, worker_process_shutdown
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from workers.modelstore.cache import ModelCache
from workers.modelstore.memory import GiB, device_memory
from workers.modelstore.store import list_installed

from .models import WorkerHeartbeat

logger = logging.getLogger(__name__)

NAME_ENV = "STUDIO_WORKER_NAME"
QUEUES_ENV = "STUDIO_WORKER_QUEUES"

# The models this process holds loaded between tasks (one per process: a
# GPU worker runs one process per card).
MODEL_CACHE = ModelCache()

_stop = threading.Event()
_thread: threading.Thread | None = None

# What a worker can load at start (STUDIO_PRELOAD_MODELS) in a way of its
# own: a registry key and a function that loads it into MODEL_CACHE (the face
# providers). Any other local model loads through its provider.
PRELOADERS: dict[str, Callable[[], object]] = {}


def register_preloader(key: str, load: Callable[[], object]) -> None:
    PRELOADERS[key] = load


def _preloader(key: str) -> Callable[[], object]:
    """The registered preloader of ``key``, else the registry model's own
    provider loading it from this host's store."""
    from .registry import load_into_cache

    return PRELOADERS.get(key) or (lambda: load_into_cache(key, MODEL_CACHE))


def preload(keys: list[str]) -> list[str]:
    """Load the models ``keys`` now, so the first task finds them ready;
    one that cannot be loaded is logged and skipped. The keys loaded."""
    done = []
    for key in keys:
        try:
            _preloader(key)()
        except Exception:  # the worker still serves what it can
            logger.exception("preloading %s failed", key)
            continue
        done.append(key)
    return done


def device_name() -> str:
    try:
        import torch
    except ImportError:
        return "cpu"
    if not torch.cuda.is_available():
        return "cpu"
    index = torch.cuda.current_device()
    return f"cuda:{index} {torch.cuda.get_device_name(index)}"


def _installed_here() -> list[str]:
    """The models in this host's store, for the planner and the admin on
    other hosts (each host has its own store unless they share a volume)."""
    return sorted(m.key for m in list_installed(Path(settings.STUDIO_MODEL_STORE)))


def report(name: str, queues: list[str], cache: ModelCache = MODEL_CACHE) -> None:
    """Write this process's heartbeat row now."""
    memory = device_memory()
    free, total = memory if memory is not None else (None, 0)
    now = timezone.now()
    WorkerHeartbeat.objects.update_or_create(
        name=name,
        defaults={
            "hostname": name.split("#", 1)[0],
            "queues": list(queues),
            "device": device_name(),
            "vram_total_gb": round(total / GiB, 2),
            "vram_free_gb": round(free / GiB, 2) if free is not None else None,
            "loaded": cache.loaded(),
            "installed": _installed_here(),
            "last_seen": now,
        },
        create_defaults={"started_at": now},
    )


def _beat(name: str, queues: list[str]) -> None:
    # Preloading takes as long as loading the models: here, not in the
    # process's start-up, which Celery gives a few seconds before it kills
    # the process as hung. The first heartbeat goes out first.
    try:
        report(name, queues)
    except Exception:
        logger.exception("worker heartbeat failed")
    preload(list(settings.STUDIO_PRELOAD_MODELS))
    while not _stop.is_set():
        try:
            report(name, queues)
        except Exception:  # the next beat tries again; a task is not at stake
            logger.exception("worker heartbeat failed")
        finally:
            close_old_connections()
        _stop.wait(settings.STUDIO_HEARTBEAT_S)
    connection.close()


@worker_process_init.connect
def start_heartbeat(**_: Any) -> None:
    node = os.environ.get(NAME_ENV)
    if not node:
        return  # a worker not started by `manage.py worker` (tests, tools)
    queues = [q for q in os.environ.get(QUEUES_ENV, "").split(",") if q]
    global _thread
    _stop.clear()
    _thread = threading.Thread(
        target=_beat, args=(f"{node}#{os.getpid()}", queues), daemon=True
    )
    _thread.start()


@worker_process_shutdown.connect
def stop_heartbeat(**_: Any) -> None:
    _stop.set()
    if _thread is not None:
        # A beat under way would write the row again after the delete.
        _thread.join(timeout=10)
    node = os.environ.get(NAME_ENV)
    if node:
        WorkerHeartbeat.objects.filter(name=f"{node}#{os.getpid()}").delete()


def live_heartbeats() -> Any:
    """Heartbeats within the staleness window."""
    since = timezone.now() - timedelta(seconds=settings.STUDIO_HEARTBEAT_STALE_S)
    return WorkerHeartbeat.objects.filter(last_seen__gte=since)


def served_queues() -> frozenset[str]:
    """Queues some worker reported serving within the staleness window."""
    rows = live_heartbeats().values_list("queues", flat=True)
    return frozenset(q for row in rows for q in row)


def queues_holding(keys: Iterable[str]) -> set[str]:
    """The queues of live workers whose store holds every model of ``keys``
    (a single-file model and its base must be on the same host)."""
    wanted = set(keys)
    found: set[str] = set()
    for queues, held in live_heartbeats().values_list("queues", "installed"):
        if wanted <= set(held):
            found.update(queues)
    return found


def installed_on_workers() -> dict[str, set[str]]:
    """Model key -> the queues of live workers whose store holds it."""
    found: dict[str, set[str]] = {}
    for queues, keys in live_heartbeats().values_list("queues", "installed"):
        for key in keys:
            found.setdefault(key, set()).update(queues)
    return found
