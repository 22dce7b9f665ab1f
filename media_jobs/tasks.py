"""Tasks of the farm itself (the project's stage tasks live in projects)."""

from __future__ import annotations

from celery import shared_task

from .reconciler import reconcile as run_reconciler
from .webhooks import deliver_webhook  # noqa: F401


@shared_task(name="media_jobs.reconcile", ignore_result=True)
def reconcile() -> dict[str, list[int]]:
    return run_reconciler().as_dict()
