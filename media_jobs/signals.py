"""``job_state_changed``: sent after the commit that moved a job to a new
status (running, succeeded, failed, cancelled, queued again), with
``job_id`` and ``status``. Admission and webhooks listen to it."""

from django.dispatch import Signal

job_state_changed = Signal()
