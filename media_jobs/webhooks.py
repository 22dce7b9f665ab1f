"""Webhooks: an HMAC-signed POST to an integration (n8n, a script) each time
one of its owner's jobs changes state, retried with backoff.

Each state change makes one ``WebhookDelivery`` row per matching webhook
before any task is sent; the ``media_jobs.deliver_webhook`` task (``io``
queue) POSTs it and records the outcome on the row. Delivery is at least
once: a receiver that must not act twice dedupes on ``X-Studio-Delivery``.

What a receiver checks (``verify`` does all of it)::

    X-Studio-Timestamp: 1718000000
    X-Studio-Signature: sha256=hex(HMAC-SHA256(secret, b"1718000000." + body))

and that the timestamp is recent, so a captured request cannot be replayed
later.

Targets: only http and https, and by default only public addresses. A
webhook to a loopback, private, link-local (cloud metadata 169.254.169.254),
unique-local, multicast or unspecified address is refused by the API and,
after resolving the host name, at every delivery; an administrator who wants
LAN targets (n8n on the LAN) sets ``STUDIO_WEBHOOK_ALLOW_PRIVATE``.

Without a broker (``CELERY_TASK_ALWAYS_EAGER``, the embedded default) each
delivery runs in a daemon thread of its own, which waits out the real backoff
between attempts, so the state change that made it (a web request, a render
thread) never waits on a receiver. Such a thread dies with the process: a
delivery it had not finished stays pending.

Settings read (all optional): ``STUDIO_WEBHOOK_TIMEOUT_S`` (10),
``STUDIO_WEBHOOK_BACKOFF_S`` (5), ``STUDIO_WEBHOOK_MAX_ATTEMPTS`` (6),
``STUDIO_WEBHOOK_ALLOW_PRIVATE`` (False).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from celery import shared_task
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import connection, transaction
from django.dispatch import receiver
from django.utils import timezone
from kombu.exceptions import OperationalError

from workers.addresses import is_public_address

from .models import Job, Webhook, WebhookDelivery
from .signals import job_state_changed

logger = logging.getLogger(__name__)

EVENTS: tuple[str, ...] = (
    "job.queued",
    "job.running",
    "job.succeeded",
    "job.failed",
    "job.cancelled",
    # A render whose scenes failed the character check waits for its owner.
    "job.review",
)
USER_AGENT = "NanoBananaStudio-Webhooks/1"
SIGNATURE_PREFIX = "sha256="
ALLOWED_SCHEMES = ("http", "https")
MAX_BACKOFF_S = 600
# 4xx answers that mean "later", not "never".
RETRYABLE_CLIENT_ERRORS = frozenset({408, 429})
# How much of a refusing receiver's body is kept on the row, for its owner.
_ERROR_BODY_CHARS = 300
ALLOW_PRIVATE_HINT = (
    "an administrator can allow LAN targets (e.g. n8n on the LAN) "
    "with STUDIO_WEBHOOK_ALLOW_PRIVATE=1"
)


def event_for(status: str) -> str:
    return f"job.{status}"


# --- signing --------------------------------------------------------------------------


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``b"<timestamp>." + body`` under ``secret``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    timestamp: int | str,
    body: bytes,
    signature: str,
    tolerance_s: float | None = 300,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` (``sha256=<hex>`` or bare hex) signs ``body`` at
    ``timestamp`` under ``secret``, and the timestamp is within
    ``tolerance_s`` of ``now`` (``None`` skips the age check)."""
    try:
        stamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    if tolerance_s is not None:
        current = time.time() if now is None else now
        if abs(current - stamp) > tolerance_s:
            return False
    given = signature.removeprefix(SIGNATURE_PREFIX)
    return hmac.compare_digest(sign(secret, stamp, body), given)


def signed_headers(delivery: WebhookDelivery, body: bytes, timestamp: int) -> dict:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Studio-Event": delivery.event,
        "X-Studio-Delivery": str(delivery.pk),
        "X-Studio-Timestamp": str(timestamp),
        "X-Studio-Signature": SIGNATURE_PREFIX
        + sign(delivery.webhook.secret, timestamp, body),
    }


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


# --- settings and backoff -------------------------------------------------------------


def timeout_s() -> float:
    return float(getattr(settings, "STUDIO_WEBHOOK_TIMEOUT_S", 10))


def max_attempts() -> int:
    return max(1, int(getattr(settings, "STUDIO_WEBHOOK_MAX_ATTEMPTS", 6)))


def backoff_seconds(attempt: int) -> int:
    """The wait before the attempt after attempt number ``attempt`` (1-based):
    base, 2×base, 4×base … capped at ten minutes."""
    base = float(getattr(settings, "STUDIO_WEBHOOK_BACKOFF_S", 5))
    return int(min(MAX_BACKOFF_S, base * 2 ** max(0, attempt - 1)))


def allow_private() -> bool:
    value = getattr(settings, "STUDIO_WEBHOOK_ALLOW_PRIVATE", False)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def is_allowed_url(url: str) -> bool:
    """Whether the scheme is http or https and there is a host (addresses
    are checked by ``check_target``)."""
    parts = urlsplit(url)
    return parts.scheme.lower() in ALLOWED_SCHEMES and bool(parts.hostname)


class TargetRefused(Exception):
    """The URL is never to be posted to (its scheme, a non-public address)."""


class TargetUnresolved(Exception):
    """The host name does not resolve now: retried like a network error."""


def _refusal(host: str, address: str) -> TargetRefused:
    where = host if host == address else f"{host} ({address})"
    return TargetRefused(
        f"refused: {where} is not a public address; {ALLOW_PRIVATE_HINT}"
    )


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def check_target(url: str, unresolved_ok: bool = False) -> None:
    """Raise ``TargetRefused`` unless ``url`` is http(s) to a host whose every
    address is public (or ``STUDIO_WEBHOOK_ALLOW_PRIVATE`` is on), and
    ``TargetUnresolved`` when the host name does not resolve (nothing is
    raised for that with ``unresolved_ok``: the API accepts a name that only
    resolves where the deliveries run, which check it again)."""
    parts = urlsplit(url)
    if not is_allowed_url(url):
        raise TargetRefused("refused: only http and https URLs")
    if allow_private():
        return
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        raise TargetRefused("refused: the port is not valid") from None
    try:
        literal = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is not None:
        if not is_public_address(host):
            raise _refusal(host, host)
        return
    try:
        addresses = resolve(host, port)
    except UnicodeError:
        raise TargetRefused(f"refused: {host!r} is not a valid host name") from None
    except (socket.gaierror, socket.herror) as exc:
        if unresolved_ok:
            return
        raise TargetUnresolved(
            f"the host name {host!r} could not be resolved: {exc}"
        ) from None
    for address in addresses:
        if not is_public_address(address):
            raise _refusal(host, address)


# --- the receiver ---------------------------------------------------------------------


def job_payload(job: Job) -> dict[str, Any]:
    def iso(moment: Any) -> str | None:
        return moment.isoformat() if moment else None

    data: dict[str, Any] = {
        "id": job.pk,
        "kind": job.kind,
        "status": job.status,
        "progress": job.progress,
        "stage": job.stage,
        "message": job.message,
        "error": job.error,
        "project": job.project_id,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "render": None,
    }
    if job.status == Job.Status.SUCCEEDED and job.kind == Job.Kind.RENDER:
        # The reverse one-to-one from projects.Render; media_jobs does not
        # import projects, so its absence is only an ObjectDoesNotExist.
        try:
            data["render"] = job.render.pk  # type: ignore[attr-defined]
        except ObjectDoesNotExist:
            pass
    return data


def webhooks_for(job: Job, event: str) -> list[Webhook]:
    hooks = Webhook.objects.filter(owner_id=job.owner_id, active=True)
    return [hook for hook in hooks if not hook.events or event in hook.events]


def create_deliveries(job: Job, event: str) -> list[WebhookDelivery]:
    """One pending delivery per matching webhook, payload included."""
    hooks = webhooks_for(job, event)
    if not hooks:
        return []
    job_data = job_payload(job)
    deliveries = []
    with transaction.atomic():
        for hook in hooks:
            delivery = WebhookDelivery.objects.create(
                webhook=hook, job=job, event=event, payload={}
            )
            delivery.payload = {
                "event": event,
                "delivery": delivery.pk,
                "occurred_at": delivery.created_at.isoformat(),
                "job": job_data,
            }
            delivery.save(update_fields=["payload"])
            deliveries.append(delivery)
    return deliveries


# Eager deliveries running now; ``wait_for_deliveries`` joins them (tests).
_delivery_threads: list[threading.Thread] = []
_threads_lock = threading.Lock()
# Waits out a retry's countdown in an eager delivery thread (tests replace it).
_sleep = time.sleep


def _deliver_in_background(delivery_id: int) -> None:
    """An eager delivery, all its attempts, with the real backoff between
    them, off the thread that changed the job's state."""
    try:
        _, countdown = attempt_delivery(delivery_id)
        while countdown is not None:
            _sleep(countdown)
            _, countdown = attempt_delivery(delivery_id)
    except Exception:
        logger.exception("webhook delivery %s failed unexpectedly", delivery_id)
    finally:
        # This thread's own connection; nothing else would ever close it.
        connection.close()


def _start_thread(delivery_id: int) -> None:
    thread = threading.Thread(
        target=_deliver_in_background,
        args=(delivery_id,),
        name=f"webhook-delivery-{delivery_id}",
        daemon=True,
    )
    with _threads_lock:
        _delivery_threads[:] = [t for t in _delivery_threads if t.is_alive()]
        thread.start()
        _delivery_threads.append(thread)


def wait_for_deliveries(timeout: float = 30) -> bool:
    """Join the eager delivery threads; whether all ended within ``timeout``
    seconds. For tests: the app itself never waits on a delivery."""
    deadline = time.monotonic() + timeout
    while True:
        with _threads_lock:
            running = [t for t in _delivery_threads if t.is_alive()]
            _delivery_threads[:] = running
        if not running:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))


def _send(delivery_id: int) -> None:
    if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        # No broker: an eager task would run right here, in the caller's
        # on_commit, for up to max_attempts × timeout (a minute); a thread
        # lets the caller (a cancel request, a render) go on at once.
        _start_thread(delivery_id)
        return
    try:
        deliver_webhook.delay(delivery_id)
    except OperationalError:
        # The broker is unreachable: the row stays pending with the reason,
        # and the job's own state change (our caller) is not undone by it.
        logger.exception("webhook delivery %s could not be queued", delivery_id)
        WebhookDelivery.objects.filter(
            pk=delivery_id, status=WebhookDelivery.Status.PENDING
        ).update(error="could not be queued: the task broker is unreachable")


@receiver(job_state_changed, dispatch_uid="media_jobs.webhooks_on_change")
def deliver_on_change(sender: Any, job_id: int, status: str, **kwargs: Any) -> None:
    event = event_for(status)
    if event not in EVENTS:
        return
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return
    for delivery in create_deliveries(job, event):
        # Sent after the rows are committed, so the task always finds its row
        # (the signal is already post-commit; this also holds for a caller
        # that sends it inside a transaction).
        transaction.on_commit(lambda pk=delivery.pk: _send(pk))


# --- the task -------------------------------------------------------------------------


@dataclass
class Outcome:
    delivered: bool
    retry: bool
    response_code: int | None = None
    error: str = ""


def post(delivery: WebhookDelivery) -> Outcome:
    """One attempt: POST the signed payload, redirects not followed."""
    url = delivery.webhook.url
    # Checked at every attempt, after resolving the name: what the API
    # checked at create may resolve elsewhere now. requests resolves the
    # name again to connect, so a DNS server that answers a public address
    # to us and a private one a moment later (DNS rebinding) still gets
    # through; that needs an attacker's own name server and TTL-0 answers,
    # and closing it would mean connecting to the checked address ourselves
    # (TLS SNI and certificate checks against the name included). Redirects
    # are not followed, so the answer cannot send us elsewhere.
    try:
        check_target(url)
    except TargetRefused as exc:
        return Outcome(False, False, error=str(exc))
    except TargetUnresolved as exc:
        return Outcome(False, True, error=str(exc))
    body = encode(delivery.payload)
    headers = signed_headers(delivery, body, int(time.time()))
    try:
        with requests.post(
            url,
            data=body,
            headers=headers,
            timeout=timeout_s(),
            allow_redirects=False,
            stream=True,  # the answer's body is not needed; read a little only
        ) as response:
            code = response.status_code
            if 200 <= code < 300:
                return Outcome(True, False, response_code=code)
            if 300 <= code < 400:
                where = response.headers.get("Location", "?")
                error = f"HTTP {code}: redirect to {where} not followed"
            else:
                snippet = response.raw.read(_ERROR_BODY_CHARS, decode_content=True)
                text = snippet.decode("utf-8", "replace").strip()
                error = f"HTTP {code}" + (f": {text}" if text else "")
    except requests.RequestException as exc:
        return Outcome(False, True, error=f"{type(exc).__name__}: {exc}"[:1000])
    rejected = 400 <= code < 500 and code not in RETRYABLE_CLIENT_ERRORS
    return Outcome(False, not rejected, response_code=code, error=error)


def _start_attempt(delivery_id: int) -> WebhookDelivery | None:
    """Count one more attempt of a pending delivery under its row lock, or
    None when there is nothing to send (delivered, failed, gone)."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update()
            .select_related("webhook")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
            return None
        if not delivery.webhook.active:
            delivery.status = WebhookDelivery.Status.FAILED
            delivery.error = "the webhook was deactivated"
            delivery.save(update_fields=["status", "error"])
            return None
        if delivery.attempts >= max_attempts():
            # A redelivered task after the last attempt (its worker was lost).
            delivery.status = WebhookDelivery.Status.FAILED
            delivery.save(update_fields=["status"])
            return None
        delivery.attempts += 1
        delivery.save(update_fields=["attempts"])
        return delivery


@shared_task(
    name="media_jobs.deliver_webhook",
    bind=True,
    # The row's ``attempts`` bounds the retries (STUDIO_WEBHOOK_MAX_ATTEMPTS).
    max_retries=None,
    ignore_result=True,
    soft_time_limit=60,
    time_limit=90,
)
def deliver_webhook(self: Any, delivery_id: int) -> Any:
    """POST one delivery; returns its status. Safe to run twice: a row that
    is no longer pending is not sent again."""
    status, countdown = attempt_delivery(delivery_id)
    if countdown is None:
        return status
    if self.request.is_eager:
        # Called eagerly (the app itself uses a thread when eager, see
        # ``_send``): with CELERY_TASK_EAGER_PROPAGATES a raised Retry would
        # reach the caller, so the Retry is returned and ``apply`` runs it at
        # once, without waiting out the countdown; the row's attempts end it.
        return self.retry(countdown=countdown, throw=False)
    raise self.retry(countdown=countdown)


def attempt_delivery(delivery_id: int) -> tuple[str, int | None]:
    """One attempt of a pending delivery, recorded on its row: its status
    and, when it is to be tried again, the seconds to wait first."""
    delivery = _start_attempt(delivery_id)
    if delivery is None:
        row = WebhookDelivery.objects.filter(pk=delivery_id).first()
        return (row.status if row else "missing"), None
    outcome = post(delivery)
    pending = WebhookDelivery.objects.filter(
        pk=delivery_id, status=WebhookDelivery.Status.PENDING
    )
    if outcome.delivered:
        pending.update(
            status=WebhookDelivery.Status.DELIVERED,
            response_code=outcome.response_code,
            delivered_at=timezone.now(),
            error="",
        )
        return WebhookDelivery.Status.DELIVERED, None
    attempt = delivery.attempts
    if outcome.retry and attempt < max_attempts():
        pending.update(response_code=outcome.response_code, error=outcome.error)
        countdown = backoff_seconds(attempt)
        logger.info(
            "webhook delivery %s attempt %s failed (%s); retrying in %ss",
            delivery_id,
            attempt,
            outcome.error,
            countdown,
            extra={"delivery": delivery_id, "attempt": attempt, "countdown": countdown},
        )
        return WebhookDelivery.Status.PENDING, countdown
    pending.update(
        status=WebhookDelivery.Status.FAILED,
        response_code=outcome.response_code,
        error=outcome.error,
    )
    logger.warning(
        "webhook delivery %s failed after %s attempt(s): %s",
        delivery_id,
        attempt,
        outcome.error,
    )
    return WebhookDelivery.Status.FAILED, None
