"""``manage.py worker``: a Celery worker subscribed to every queue its
machine can serve.

    python manage.py worker                # CPU host: cpu, io
    python manage.py worker --vram 24      # + gpu-8, gpu-16, gpu-24
    STUDIO_WORKER_VRAM=48 python manage.py worker --gpu-only --beat
    python manage.py worker --vram 24 --gpu 1 --gpu-only   # one per card

A GPU host runs one task at a time by default (``--concurrency``): two models
on one card would share its memory.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from media_jobs.heartbeat import NAME_ENV, QUEUES_ENV
from media_jobs.queues import queues_for_worker


def _vram_default() -> float:
    raw = os.environ.get("STUDIO_WORKER_VRAM", "0")
    try:
        return float(raw)
    except ValueError:
        raise CommandError(f"STUDIO_WORKER_VRAM is not a number: {raw!r}") from None


class Command(BaseCommand):
    help = "Start a worker on the queues this machine can serve."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--vram",
            type=float,
            default=None,
            help="GPU memory in GB (default: $STUDIO_WORKER_VRAM, or 0: no GPU).",
        )
        parser.add_argument(
            "--gpu-only",
            action="store_true",
            help="Serve only the GPU queues (leave cpu and io to other hosts).",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help="Parallel tasks (default: 1 with a GPU, else the CPU count).",
        )
        parser.add_argument(
            "--gpu",
            type=int,
            default=None,
            metavar="INDEX",
            help="The card this worker uses (CUDA_VISIBLE_DEVICES): run one"
            " worker per GPU, each with its own index and --vram.",
        )
        parser.add_argument("--hostname", default=None, help="Worker node name.")
        parser.add_argument(
            "--beat",
            action="store_true",
            help="Also run the periodic reconciler here (one per farm).",
        )
        parser.add_argument("--loglevel", default="INFO")
        parser.add_argument(
            "--print-queues",
            action="store_true",
            help="Print the queues this worker would serve, and exit.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        vram = options["vram"] if options["vram"] is not None else _vram_default()
        if vram < 0:
            raise CommandError("--vram cannot be negative")
        try:
            queues = queues_for_worker(vram, cpu=not options["gpu_only"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
        if settings.TASK_TIME_LIMIT >= visibility:
            # Redis would hand a task still running here to another worker
            # (a test farm may want exactly that, to redeliver in seconds).
            self.stderr.write(
                f"warning: this worker's task time limit ({settings.TASK_TIME_LIMIT}"
                f" s) is not below the farm's visibility timeout ({visibility} s):"
                " a long task may run twice; raise STUDIO_VISIBILITY_TIMEOUT and"
                " STUDIO_STALE_JOB_S on every host"
            )
        gpu = options["gpu"]
        if gpu is not None:
            if gpu < 0 or vram <= 0:
                raise CommandError("--gpu takes a card index and needs --vram")
            # Set before anything imports torch: the worker then sees only
            # its own card, as device 0.
            os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
        if options["print_queues"]:
            self.stdout.write(",".join(queues))
            return
        concurrency = options["concurrency"] or (1 if vram > 0 else os.cpu_count() or 1)
        card = f".{gpu}" if gpu is not None else ""
        hostname = options["hostname"] or (
            f"{'gpu' if vram > 0 else 'cpu'}{vram:g}{card}@{socket.gethostname()}"
        )
        argv = [
            "worker",
            "--queues", ",".join(queues),
            "--concurrency", str(concurrency),
            "--hostname", hostname,
            "--loglevel", options["loglevel"],
            # This host's limits apply to what it runs, whoever sent it.
            "--soft-time-limit", str(settings.TASK_SOFT_TIME_LIMIT),
            "--time-limit", str(settings.TASK_TIME_LIMIT),
            "--pool", "prefork",
            "--without-gossip",
            "--without-mingle",
        ]  # fmt: skip
        if options["beat"]:
            schedule = settings.DATA_DIR / "celerybeat-schedule"
            argv += ["--beat", "--schedule", str(schedule)]
        self.stderr.write(f"worker {hostname}: queues {', '.join(queues)}")
        # Each pool process reports its heartbeat under this name
        # (media_jobs.heartbeat); the processes fork from this one.
        os.environ[NAME_ENV] = hostname
        os.environ[QUEUES_ENV] = ",".join(queues)
        from studio_site.celery import app

        app.worker_main(argv)
