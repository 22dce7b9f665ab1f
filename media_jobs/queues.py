"""Which queue a task goes to and which queues a worker serves.

Queues are by capability: ``cpu``, ``io``, and one GPU queue per memory class
(``STUDIO_GPU_QUEUES``: gpu-8, gpu-16, gpu-24, gpu-48). A task that needs
V GB of GPU memory goes to the smallest class that holds it, and a worker
with M GB serves every class up to M, so a 24 GB card also takes 8 and 16 GB
work when nothing bigger is waiting.

Kombu's Redis transport polls a worker's queues in the order they are listed
(within each priority step), so that order is the worker's preference: its
own GPU class first, then the smaller classes down to the smallest, then
``cpu`` and ``io`` last. A big card thus takes the work only it can do before
work a smaller card or a CPU host could do as well.
"""

from __future__ import annotations

from django.conf import settings

CPU_QUEUE = "cpu"
IO_QUEUE = "io"


class NoQueueForModel(ValueError):
    """No GPU class of this farm has the memory a model needs."""


def gpu_queues() -> dict[str, float]:
    """GPU queue names and their memory, smallest first."""
    return dict(sorted(settings.STUDIO_GPU_QUEUES.items(), key=lambda kv: kv[1]))


def queue_for_vram(vram_gb: float) -> str:
    """The queue of a task needing ``vram_gb`` of GPU memory (0: the CPU)."""
    if vram_gb <= 0:
        return CPU_QUEUE
    for name, size in gpu_queues().items():
        if vram_gb <= size:
            return name
    largest = max(gpu_queues().values())
    raise NoQueueForModel(
        f"it needs {vram_gb:g} GB of GPU memory; the largest GPU queue"
        f" has {largest:g} GB"
    )


def queues_for_worker(vram_gb: float, *, cpu: bool = True) -> list[str]:
    """Every queue a worker with ``vram_gb`` of GPU memory can serve, in the
    order it prefers them: GPU classes largest first, then ``cpu``, ``io``."""
    queues = [name for name, size in reversed(gpu_queues().items()) if size <= vram_gb]
    if cpu:
        queues += [CPU_QUEUE, IO_QUEUE]
    if not queues:
        raise ValueError("a worker without the CPU queues needs a GPU (--vram)")
    return queues


# Job priority (media_jobs.Job.Priority, higher is more urgent) onto Redis's
# priority lists, where 0 is served first.
_CELERY_PRIORITY = {0: 9, 1: 6, 2: 3, 3: 0}


def celery_priority(job_priority: int) -> int:
    return _CELERY_PRIORITY.get(job_priority, 6)


def live_queues() -> frozenset[str]:
    """Queues some worker serves now: those of the workers that reported a
    heartbeat lately (``media_jobs.heartbeat``). Without a broker every task
    runs in this process, so every queue is served."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return frozenset([CPU_QUEUE, IO_QUEUE, *gpu_queues()])
    from .heartbeat import served_queues

    return served_queues()
