"""Prometheus metrics of the farm, read at scrape time.

Nothing is counted in process memory: web and worker processes come and go,
so every value is read from where the farm keeps its state when Prometheus
asks. Queue depths come from the broker's Redis lists, task timings and
outcomes from the ``TaskRun`` rows, job counts from ``Job``, cache figures
from ``CacheEntry`` (as ``cache.statistics`` counts them). Each family is
one aggregate query (or one Redis pipeline), never a loop over rows.

The counters (``*_total``) are sums over the rows the database holds, so
they drop when old jobs are deleted; ``rate()`` and ``increase()`` treat a
drop as a counter reset.

``metrics_view`` serves them at ``/metrics`` to a scraper that sends
``Authorization: Bearer <STUDIO_METRICS_TOKEN>`` and to logged-in staff.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import (
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    Sum,
)
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .models import CacheEntry, Job, RunStatus, TaskRun

logger = logging.getLogger(__name__)

# From a cached lookup (a tenth of a second) to a long clip on a small card
# (an hour, past which the task time limit cuts in).
DURATION_BUCKETS: tuple[float, ...] = (
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1200,
    1800,
    3600,
)
# Time from being sent to a queue until a worker starts the task: near zero
# on an idle farm, minutes to an hour when a GPU class is saturated.
DISPATCH_BUCKETS: tuple[float, ...] = (
    0.1,
    0.5,
    1,
    5,
    15,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
)

FINISHED = (RunStatus.DONE, RunStatus.FAILED)
TERMINAL = (RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED)
ACTIVE = (RunStatus.PENDING, RunStatus.RUNNING)

# Redis's answer must not hold up a scrape (Prometheus times out at 10 s).
REDIS_TIMEOUT_S = 2.0


def _seconds(value: Any) -> float:
    """A duration sum as the database returns it, in seconds."""
    if value is None:
        return 0.0
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value) / 1_000_000  # microseconds (a DurationField's storage)


def _buckets(row: dict[str, Any], bounds: Sequence[float]) -> list[tuple[str, float]]:
    buckets = [
        (floatToGoString(bound), float(row[f"le_{i}"]))
        for i, bound in enumerate(bounds)
    ]
    buckets.append(("+Inf", float(row["count"])))
    return buckets


# --- the broker --------------------------------------------------------------


def _transport_option(name: str, default: Any) -> Any:
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    return options.get(name, default)


def queue_names() -> list[str]:
    """The farm's queues, as the Celery settings declare them."""
    names = []
    for queue in getattr(settings, "CELERY_TASK_QUEUES", None) or ():
        name = getattr(queue, "name", queue)
        if name and name not in names:
            names.append(str(name))
    return names


def priority_lists(queue: str) -> list[str]:
    """The Redis lists kombu keeps a queue's messages in, one per priority
    step: the queue's own name for step 0, ``<queue><sep><step>`` for the
    others (kombu.transport.redis.Channel._q_for_pri)."""
    sep = _transport_option("sep", "\x06\x16")
    steps = _transport_option("priority_steps", [0, 3, 6, 9])
    prefix = _transport_option("global_keyprefix", "")
    names = []
    for step in sorted(set(steps)):
        name = f"{queue}{sep}{step}" if step else queue
        if prefix + name not in names:
            names.append(prefix + name)
    return names


def broker_depths(url: str) -> tuple[dict[str, int], int]:
    """Messages waiting per queue and the number taken but unacknowledged,
    in one pipeline. Raises redis errors."""
    import redis

    queues = queue_names()
    unacked_key = _transport_option("global_keyprefix", "") + _transport_option(
        "unacked_key", "unacked"
    )
    client = redis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )
    try:
        lists = {queue: priority_lists(queue) for queue in queues}
        with client.pipeline(transaction=False) as pipe:
            for names in lists.values():
                for name in names:
                    pipe.llen(name)
            pipe.hlen(unacked_key)
            replies = iter(pipe.execute())
        depths = {
            queue: sum(int(next(replies)) for _ in names)
            for queue, names in lists.items()
        }
        unacked = int(next(replies))
    finally:
        client.close()
    return depths, unacked


# --- the collector -----------------------------------------------------------


class StudioCollector(Collector):
    """Every studio metric, read when collected."""

    def collect(self) -> Iterator[Metric]:
        yield from self.collect_broker()
        yield from self.collect_tasks()
        yield from self.collect_dispatch()
        yield from self.collect_jobs()
        yield from self.collect_cache()

    def describe(self) -> Iterable[Metric]:
        # Registering must not query the database or Redis.
        return []

    def collect_broker(self) -> Iterator[Metric]:
        url = getattr(settings, "REDIS_URL", "")
        if not url:
            return  # eager mode: no broker, no queues to measure
        up = GaugeMetricFamily(
            "studio_broker_up", "1 when the broker answered this scrape, else 0."
        )
        try:
            depths, unacked = broker_depths(url)
        except Exception:
            logger.warning("metrics: the broker did not answer", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily(
            "studio_queue_depth",
            "Messages waiting in a queue (all its priority lists).",
            labels=["queue"],
        )
        for queue, n in depths.items():
            depth.add_metric([queue], n)
        yield depth
        yield GaugeMetricFamily(
            "studio_queue_unacked",
            "Messages taken by workers and not yet acknowledged.",
            value=unacked,
        )

    def collect_tasks(self) -> Iterator[Metric]:
        finished = Q(status__in=FINISHED, seconds__isnull=False)
        aggregates: dict[str, Any] = {
            "count": Count("id", filter=finished),
            "sum": Sum("seconds", filter=finished),
            "failed": Count("id", filter=Q(status=RunStatus.FAILED)),
            "redeliveries": Sum(F("deliveries") - 1, filter=Q(deliveries__gt=1)),
        }
        for status in TERMINAL + ACTIVE:
            aggregates[f"status_{status}"] = Count("id", filter=Q(status=status))
        for i, bound in enumerate(DURATION_BUCKETS):
            aggregates[f"le_{i}"] = Count("id", filter=finished & Q(seconds__lte=bound))
        rows = (
            TaskRun.objects.order_by()
            .values("queue", "task_name")
            .annotate(**aggregates)
            .order_by("queue", "task_name")
        )

        duration = HistogramMetricFamily(
            "studio_task_duration_seconds",
            "Run time of finished tasks (done or failed).",
            labels=["queue", "task"],
        )
        total = CounterMetricFamily(
            "studio_tasks",
            "Tasks that ended, by outcome.",
            labels=["queue", "task", "status"],
        )
        failures = CounterMetricFamily(
            "studio_task_failures", "Tasks that failed.", labels=["queue", "task"]
        )
        redeliveries = CounterMetricFamily(
            "studio_task_redeliveries",
            "Deliveries past the first (a worker was lost mid-task).",
            labels=["queue", "task"],
        )
        active = GaugeMetricFamily(
            "studio_tasks_active",
            "Tasks sent and not yet ended, pending or running.",
            labels=["queue", "task", "status"],
        )
        for row in rows:
            labels = [row["queue"], row["task_name"]]
            if row["count"]:
                duration.add_metric(
                    labels,
                    _buckets(row, DURATION_BUCKETS),
                    float(row["sum"] or 0.0),
                )
            for status in TERMINAL:
                total.add_metric([*labels, status], row[f"status_{status}"])
            for status in ACTIVE:
                active.add_metric([*labels, status], row[f"status_{status}"])
            failures.add_metric(labels, row["failed"])
            redeliveries.add_metric(labels, row["redeliveries"] or 0)
        yield from (duration, total, failures, redeliveries, active)

    def collect_dispatch(self) -> Iterator[Metric]:
        delay = ExpressionWrapper(
            F("started_at") - F("queued_at"), output_field=DurationField()
        )
        aggregates: dict[str, Any] = {
            "count": Count("id"),
            "sum": Sum("delay"),
        }
        for i, bound in enumerate(DISPATCH_BUCKETS):
            aggregates[f"le_{i}"] = Count(
                "id", filter=Q(delay__lte=timedelta(seconds=bound))
            )
        rows = (
            TaskRun.objects.order_by()
            .filter(queued_at__isnull=False, started_at__isnull=False)
            .annotate(delay=delay)
            .values("queue")
            .annotate(**aggregates)
            .order_by("queue")
        )
        family = HistogramMetricFamily(
            "studio_dispatch_delay_seconds",
            "Time from a task being queued until a worker started it.",
            labels=["queue"],
        )
        for row in rows:
            family.add_metric(
                [row["queue"]], _buckets(row, DISPATCH_BUCKETS), _seconds(row["sum"])
            )
        yield family

    def collect_jobs(self) -> Iterator[Metric]:
        counts = {
            (row["status"], row["kind"]): row["n"]
            for row in Job.objects.order_by()
            .values("status", "kind")
            .annotate(n=Count("id"))
        }
        jobs = GaugeMetricFamily(
            "studio_jobs", "Jobs by state and kind.", labels=["status", "kind"]
        )
        # Every combination, zeros included, so a series does not vanish
        # (and an alert on it go quiet) when its last job moves on.
        statuses = [value for value, _ in Job.Status.choices]
        kinds = [value for value, _ in Job.Kind.choices]
        for status, kind in counts:
            if status not in statuses:
                statuses.append(status)
            if kind not in kinds:
                kinds.append(kind)
        for status in statuses:
            for kind in kinds:
                jobs.add_metric([status, kind], counts.get((status, kind), 0))
        yield jobs
        yield GaugeMetricFamily(
            "studio_jobs_waiting",
            "Queued jobs not yet sent to the farm (waiting for a slot).",
            value=Job.objects.filter(
                status=Job.Status.QUEUED, dispatched_at__isnull=True
            ).count(),
        )

    def collect_cache(self) -> Iterator[Metric]:
        # Aliases apart from the field names: an alias ``hits`` would shadow
        # the field inside ``F("hits") * F("seconds")``.
        stats = {
            row["kind"]: row
            for row in CacheEntry.objects.order_by()
            .values("kind")
            .annotate(
                n_entries=Count("id"),
                n_hits=Sum("hits"),
                n_bytes=Sum("size"),
                n_saved=Sum(F("hits") * F("seconds")),
            )
        }
        kinds = [value for value, _ in CacheEntry.Kind.choices]
        kinds += [kind for kind in stats if kind not in kinds]
        entries = GaugeMetricFamily(
            "studio_cache_entries", "Outputs in the cache.", labels=["kind"]
        )
        hits = CounterMetricFamily(
            "studio_cache_hits", "Times a cached output was reused.", labels=["kind"]
        )
        size = GaugeMetricFamily(
            "studio_cache_bytes", "Storage the cached outputs take.", labels=["kind"]
        )
        saved = CounterMetricFamily(
            "studio_cache_saved_seconds",
            "Compute time the hits saved (hits x the time each output took).",
            labels=["kind"],
        )
        for kind in kinds:
            row = stats.get(kind, {})
            entries.add_metric([kind], row.get("n_entries") or 0)
            hits.add_metric([kind], row.get("n_hits") or 0)
            size.add_metric([kind], row.get("n_bytes") or 0)
            saved.add_metric([kind], row.get("n_saved") or 0.0)
        yield from (entries, hits, size, saved)


def studio_registry() -> CollectorRegistry:
    """A registry holding only the studio's collector (no process metrics:
    those of one web process say nothing about the farm)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StudioCollector())
    return registry


REGISTRY = studio_registry()


# --- the view ----------------------------------------------------------------


def _bearer(request: HttpRequest) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


@csrf_exempt  # it changes nothing; an unauthorized POST gets 404 like a GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics in Prometheus's text format.

    For a scraper with the bearer token ``STUDIO_METRICS_TOKEN`` (empty: no
    token is accepted) or a logged-in staff user. A wrong token gets 401; a
    request with neither gets 404, so the endpoint is not advertised.
    """
    user = request.user
    staff = user.is_authenticated and user.is_active and user.is_staff
    if not staff:
        sent = _bearer(request)
        expected = getattr(settings, "STUDIO_METRICS_TOKEN", "") or ""
        if sent is None or not expected:
            raise Http404
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            response = HttpResponse(
                "Invalid token.\n", status=401, content_type="text/plain"
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    response = HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
