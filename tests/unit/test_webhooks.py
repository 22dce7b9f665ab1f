"""Webhooks: an HMAC-signed POST to an integration on each job state change,
retried with backoff, and the API that manages them.

The receiver is a real HTTP server on 127.0.0.1 that checks every signature
with the webhook's secret on its own (not with the code under test), and can
be told to fail or to answer slowly. Tasks run eagerly, as in the embedded
default: each delivery in a thread of its own, which ``settle`` waits for,
and whose backoff sleeps are recorded instead of slept. Being on 127.0.0.1,
the receiver needs STUDIO_WEBHOOK_ALLOW_PRIVATE, on unless a test says not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from rest_framework.test import APIClient

from media_jobs import lifecycle, webhooks
from media_jobs.models import Job, Webhook, WebhookDelivery
from media_jobs.webhooks import (
    USER_AGENT,
    backoff_seconds,
    deliver_webhook,
    is_public_address,
    sign,
    verify,
    wait_for_deliveries,
)
from projects.models import Render
from tests.factories import ProjectFactory

# State changes announce themselves on commit, so most tests commit for real;
# those that never change a job's state roll back, which is faster.
pytestmark = pytest.mark.django_db(transaction=True)
ROLLBACK = pytest.mark.django_db(transaction=False)

SECRET = "s3cret-" + "ab" * 20


# --- a receiver that records and checks what it gets ----------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class FakeReceiver:
    url: str = ""
    secret: str = SECRET
    answers: list[int] = field(default_factory=list)
    default_answer: int = 200
    location: str = ""
    delay_s: float = 0
    requests: list[Received] = field(default_factory=list)

    def fail_first(self, times: int, code: int = 500) -> None:
        self.answers = [code] * times

    def next_answer(self) -> int:
        return self.answers.pop(0) if self.answers else self.default_answer

    @property
    def events(self) -> list[str]:
        return [r.headers["X-Studio-Event"] for r in self.requests]


def signature_is_valid(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The check an integrator writes, independent of ``media_jobs.webhooks``."""
    stamp = headers.get("X-Studio-Timestamp", "")
    expected = hmac.new(
        secret.encode(), stamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    given = headers.get("X-Studio-Signature", "")
    fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 60
    return fresh and hmac.compare_digest(f"sha256={expected}", given)


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    fake = FakeReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(fake.delay_s)
            headers = dict(self.headers.items())
            fake.requests.append(
                Received(
                    self.path,
                    headers,
                    body,
                    signature_is_valid(fake.secret, headers, body),
                )
            )
            code = fake.next_answer()
            self.send_response(code)
            if fake.location:
                self.send_header("Location", fake.location)
            reply = b"nope" if code >= 400 else b"ok"
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def slept() -> list[float]:
    """The backoff sleeps of the eager delivery threads, not slept."""
    return []


@pytest.fixture(autouse=True)
def _eager_webhooks(settings, monkeypatch, slept) -> Iterator[None]:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_TASK_EAGER_PROPAGATES = True
    settings.STUDIO_WEBHOOK_TIMEOUT_S = 5
    settings.STUDIO_WEBHOOK_BACKOFF_S = 5
    settings.STUDIO_WEBHOOK_MAX_ATTEMPTS = 6
    settings.STUDIO_WEBHOOK_ALLOW_PRIVATE = True
    monkeypatch.setattr(webhooks, "_sleep", slept.append)
    yield
    # No delivery thread outlives its test (its settings, its rows).
    assert wait_for_deliveries(30)


def settle() -> None:
    """Wait for the deliveries the state changes so far started."""
    assert wait_for_deliveries(20)


@pytest.fixture
def countdowns(caplog) -> Callable[[], list[int]]:
    """The countdowns the delivery task asked for before each retry, read
    from the ``countdown`` its log records carry."""
    caplog.set_level(logging.INFO, logger="media_jobs.webhooks")

    def asked() -> list[int]:
        return [r.countdown for r in caplog.records if hasattr(r, "countdown")]

    return asked


def hook_for(owner: Any, url: str, **fields: Any) -> Webhook:
    return Webhook.objects.create(owner=owner, url=url, secret=SECRET, **fields)


def queued_job(owner: Any, **fields: Any) -> Job:
    return Job.objects.create(owner=owner, kind="render", status="queued", **fields)


# --- delivery ------------------------------------------------------------------------


def test_a_state_change_posts_a_signed_payload(alice, receiver):
    hook = hook_for(alice, receiver.url)
    job = queued_job(alice)

    assert lifecycle.claim(job.pk)
    settle()

    assert len(receiver.requests) == 1
    got = receiver.requests[0]
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert got.signature_ok
    assert got.path == "/hook"
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["User-Agent"] == USER_AGENT
    assert got.headers["X-Studio-Event"] == "job.running"
    assert got.headers["X-Studio-Delivery"] == str(delivery.pk)
    payload = got.payload
    assert payload["event"] == "job.running"
    assert payload["delivery"] == delivery.pk
    assert payload["job"]["id"] == job.pk
    assert payload["job"]["kind"] == "render"
    assert payload["job"]["status"] == "running"
    assert payload["job"]["started_at"] is not None
    assert payload["job"]["finished_at"] is None
    assert payload["job"]["project"] is None
    assert (delivery.status, delivery.attempts, delivery.response_code) == (
        WebhookDelivery.Status.DELIVERED,
        1,
        200,
    )
    assert delivery.delivered_at is not None
    assert delivery.job_id == job.pk


def test_each_state_change_of_a_job_is_posted_in_order(alice, receiver):
    hook_for(alice, receiver.url)
    job = queued_job(alice)

    lifecycle.claim(job.pk)
    settle()
    lifecycle.fail(job.pk, "the GPU ran out of memory")
    settle()
    # A second report of the same failure changes nothing and posts nothing.
    lifecycle.fail(job.pk, "again")
    settle()

    assert receiver.events == ["job.running", "job.failed"]
    failed = receiver.requests[1].payload["job"]
    assert failed["status"] == "failed"
    assert failed["error"] == "the GPU ran out of memory"
    assert failed["finished_at"] is not None
    assert all(r.signature_ok for r in receiver.requests)


def test_a_webhook_receives_only_the_events_it_asked_for(alice, receiver):
    hook_for(alice, receiver.url, events=["job.cancelled", "job.failed"])
    job = queued_job(alice)

    lifecycle.claim(job.pk)
    lifecycle.cancel(job.pk)
    settle()

    assert receiver.events == ["job.cancelled"]


def test_inactive_webhooks_and_other_users_webhooks_receive_nothing(
    alice, charlie, receiver
):
    hook_for(alice, receiver.url, active=False)
    hook_for(charlie, receiver.url)
    job = queued_job(alice)

    lifecycle.claim(job.pk)
    settle()

    assert receiver.requests == []
    assert not WebhookDelivery.objects.exists()


def test_a_succeeded_render_carries_its_render_id(alice, receiver):
    hook_for(alice, receiver.url, events=["job.succeeded"])
    project = ProjectFactory(owner=alice)
    job = queued_job(alice, project=project)
    lifecycle.claim(job.pk)
    render = Render.objects.create(
        project=project,
        job=job,
        file="renders/video.mp4",
        output_format="mp4",
        preset="preview",
        width=320,
        height=180,
        fps=24,
        duration=2.0,
        size=100,
    )

    lifecycle.succeed(job.pk)
    settle()

    job_data = receiver.requests[-1].payload["job"]
    assert job_data["status"] == "succeeded"
    assert job_data["render"] == render.pk
    assert job_data["project"] == project.pk
    assert job_data["progress"] == 1.0


def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(
    alice, receiver, countdowns, slept
):
    hook = hook_for(alice, receiver.url)
    receiver.fail_first(2, code=503)

    lifecycle.claim(queued_job(alice).pk)
    settle()

    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert len(receiver.requests) == 3
    assert countdowns() == [5, 10]
    # The eager delivery thread waits out the real backoff.
    assert slept == [5, 10]
    assert (delivery.status, delivery.attempts, delivery.response_code) == (
        WebhookDelivery.Status.DELIVERED,
        3,
        200,
    )
    assert delivery.error == ""
    # Every attempt is the same delivery, freshly signed.
    assert {r.headers["X-Studio-Delivery"] for r in receiver.requests} == {
        str(delivery.pk)
    }
    assert all(r.signature_ok for r in receiver.requests)


def test_a_receiver_that_keeps_failing_is_given_up_after_the_last_attempt(
    settings, alice, receiver, countdowns
):
    settings.STUDIO_WEBHOOK_MAX_ATTEMPTS = 3
    hook = hook_for(alice, receiver.url)
    receiver.default_answer = 500

    lifecycle.claim(queued_job(alice).pk)
    settle()

    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert len(receiver.requests) == 3
    assert countdowns() == [5, 10]
    assert (delivery.status, delivery.attempts, delivery.response_code) == (
        WebhookDelivery.Status.FAILED,
        3,
        500,
    )
    assert "HTTP 500" in delivery.error
    assert delivery.delivered_at is None


def test_a_throttled_delivery_is_retried(alice, receiver, countdowns):
    hook = hook_for(alice, receiver.url)
    receiver.fail_first(1, code=429)

    lifecycle.claim(queued_job(alice).pk)
    settle()

    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert len(receiver.requests) == 2
    assert countdowns() == [5]
    assert delivery.status == WebhookDelivery.Status.DELIVERED


@pytest.mark.parametrize("code", [400, 401, 404, 410])
def test_a_rejected_delivery_is_not_retried(alice, receiver, countdowns, code):
    hook = hook_for(alice, receiver.url)
    receiver.default_answer = code

    lifecycle.claim(queued_job(alice).pk)
    settle()

    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert len(receiver.requests) == 1
    assert countdowns() == []
    assert (delivery.status, delivery.attempts, delivery.response_code) == (
        WebhookDelivery.Status.FAILED,
        1,
        code,
    )
    assert delivery.error.startswith(f"HTTP {code}")


def test_an_unreachable_receiver_is_retried_then_given_up(settings, alice, countdowns):
    settings.STUDIO_WEBHOOK_MAX_ATTEMPTS = 2
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    hook = hook_for(alice, f"http://127.0.0.1:{port}/hook")

    lifecycle.claim(queued_job(alice).pk)
    settle()

    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert countdowns() == [5]
    assert (delivery.status, delivery.attempts, delivery.response_code) == (
        WebhookDelivery.Status.FAILED,
        2,
        None,
    )
    assert "ConnectionError" in delivery.error


def test_a_redirect_is_not_followed(settings, alice, receiver):
    settings.STUDIO_WEBHOOK_MAX_ATTEMPTS = 1
    receiver.default_answer = 302
    receiver.location = receiver.url.replace("/hook", "/elsewhere")
    hook = hook_for(alice, receiver.url)

    lifecycle.claim(queued_job(alice).pk)
    settle()

    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert [r.path for r in receiver.requests] == ["/hook"]
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.response_code == 302
    assert "not followed" in delivery.error


def test_a_delivered_delivery_is_not_sent_again(alice, receiver):
    hook = hook_for(alice, receiver.url)
    lifecycle.claim(queued_job(alice).pk)
    settle()
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert delivery.status == WebhookDelivery.Status.DELIVERED

    # The task delivered a second time (a worker lost before its ack).
    deliver_webhook.delay(delivery.pk)
    assert deliver_webhook(delivery.pk) == WebhookDelivery.Status.DELIVERED

    delivery.refresh_from_db()
    assert len(receiver.requests) == 1
    assert delivery.attempts == 1


def test_a_url_that_is_not_http_is_never_requested(alice):
    # Written past the API's validation, as an old row or the admin might.
    hook = hook_for(alice, "file:///etc/passwd")

    lifecycle.claim(queued_job(alice).pk)
    settle()

    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.attempts == 1
    assert delivery.response_code is None
    assert "only http and https" in delivery.error


def test_an_eager_state_change_does_not_wait_for_a_slow_receiver(alice, receiver):
    hook = hook_for(alice, receiver.url)
    receiver.delay_s = 2
    job = queued_job(alice)

    started = time.monotonic()
    assert lifecycle.claim(job.pk)
    took = time.monotonic() - started

    assert took < 1
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING
    assert WebhookDelivery.objects.get(webhook=hook).status == "pending"
    settle()
    assert time.monotonic() - started >= 2
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert (delivery.status, delivery.attempts, delivery.response_code) == (
        WebhookDelivery.Status.DELIVERED,
        1,
        200,
    )
    assert receiver.events == ["job.running"]


# --- private targets (SSRF) -----------------------------------------------------------


def test_a_private_target_is_not_posted_to_at_delivery_time(
    settings, alice, receiver, countdowns
):
    # Written past the API's check (an old row, the admin, or the setting
    # on then): the delivery checks again.
    hook = hook_for(alice, receiver.url)
    settings.STUDIO_WEBHOOK_ALLOW_PRIVATE = False

    lifecycle.claim(queued_job(alice).pk)
    settle()

    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert receiver.requests == []
    assert countdowns() == []
    assert (delivery.status, delivery.attempts, delivery.response_code) == (
        WebhookDelivery.Status.FAILED,
        1,
        None,
    )
    assert "127.0.0.1 is not a public address" in delivery.error
    assert "STUDIO_WEBHOOK_ALLOW_PRIVATE=1" in delivery.error


def test_a_name_is_refused_when_any_of_its_addresses_is_private(
    settings, alice, receiver, monkeypatch
):
    settings.STUDIO_WEBHOOK_ALLOW_PRIVATE = False
    resolved: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        resolved.append(f"{host}:{port}")
        return ["93.184.215.14", "10.1.2.3"]

    monkeypatch.setattr(webhooks, "resolve", resolve)
    hook = hook_for(alice, "https://rebound.example.com/hook")

    lifecycle.claim(queued_job(alice).pk)
    settle()

    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert resolved == ["rebound.example.com:443"]
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert "rebound.example.com (10.1.2.3) is not a public" in delivery.error


def test_a_name_that_does_not_resolve_is_retried_like_a_network_error(
    settings, alice, countdowns
):
    settings.STUDIO_WEBHOOK_ALLOW_PRIVATE = False
    settings.STUDIO_WEBHOOK_MAX_ATTEMPTS = 2
    hook = hook_for(alice, "http://no-such-host.invalid/hook")

    lifecycle.claim(queued_job(alice).pk)
    settle()

    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert countdowns() == [5]
    assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.FAILED, 2)
    assert "'no-such-host.invalid' could not be resolved" in delivery.error


@ROLLBACK
def test_public_and_non_public_addresses():
    public = ["8.8.8.8", "93.184.215.14", "2606:4700::1111"]
    internal = [
        "127.0.0.1",
        "10.0.0.5",
        "172.16.1.1",
        "192.168.1.10",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::",
        "64:ff9b::a00:5",
        "not an address",
    ]
    assert [a for a in public if not is_public_address(a)] == []
    assert [a for a in internal if is_public_address(a)] == []


# --- signing and backoff --------------------------------------------------------------


@ROLLBACK
def test_the_signature_is_hmac_sha256_of_the_timestamp_and_body():
    body = b'{"event":"job.failed"}'
    expected = hmac.new(b"key", b"1700000000." + body, hashlib.sha256).hexdigest()

    assert sign("key", 1700000000, body) == expected
    assert verify("key", "1700000000", body, f"sha256={expected}", now=1700000010)


@ROLLBACK
def test_the_signature_does_not_verify_with_another_secret():
    body = b'{"event":"job.succeeded"}'
    now = int(time.time())
    signature = "sha256=" + sign(SECRET, now, body)

    assert verify(SECRET, now, body, signature)
    assert not verify("another secret", now, body, signature)
    assert not verify(SECRET, now, body + b" ", signature)
    assert not verify(SECRET, now + 1, body, signature)


@ROLLBACK
def test_an_old_signature_is_refused_as_a_replay():
    body = b"{}"
    then = int(time.time()) - 301
    signature = "sha256=" + sign(SECRET, then, body)

    assert not verify(SECRET, then, body, signature)
    assert verify(SECRET, then, body, signature, tolerance_s=None)
    assert not verify(SECRET, "not a time", body, signature)


@ROLLBACK
def test_backoff_doubles_from_the_base_and_is_capped_at_ten_minutes(settings):
    settings.STUDIO_WEBHOOK_BACKOFF_S = 5
    assert [backoff_seconds(n) for n in range(1, 9)] == [
        5,
        10,
        20,
        40,
        80,
        160,
        320,
        600,
    ]
    assert backoff_seconds(50) == 600
    settings.STUDIO_WEBHOOK_BACKOFF_S = 1
    assert backoff_seconds(3) == 4


# --- the API --------------------------------------------------------------------------


@pytest.fixture
def api(alice) -> APIClient:
    client = APIClient()
    client.force_authenticate(alice)
    return client


@pytest.fixture
def charlie_api(charlie) -> APIClient:
    client = APIClient()
    client.force_authenticate(charlie)
    return client


def create_hook(api: APIClient, **data: Any) -> dict[str, Any]:
    response = api.post(
        "/api/webhooks/",
        {"url": "http://n8n.lan:5678/webhook/abc", **data},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


@ROLLBACK
def test_the_secret_is_shown_only_on_create(api, alice):
    created = create_hook(api, secret="mine", owner=999)

    hook = Webhook.objects.get(pk=created["id"])
    assert hook.owner == alice
    assert len(created["secret"]) == 64
    int(created["secret"], 16)
    assert created["secret"] == hook.secret != "mine"
    assert "secret" not in api.get(f"/api/webhooks/{hook.pk}/").json()
    listed = api.get("/api/webhooks/").json()
    assert all("secret" not in item for item in listed["results"])
    changed = api.patch(
        f"/api/webhooks/{hook.pk}/",
        {"active": False, "secret": "chosen"},
        format="json",
    )
    assert changed.status_code == 200
    assert "secret" not in changed.json()
    hook.refresh_from_db()
    assert hook.secret == created["secret"]
    assert hook.active is False


@ROLLBACK
def test_two_webhooks_get_different_secrets(api):
    assert create_hook(api)["secret"] != create_hook(api)["secret"]


def test_rotating_the_secret_signs_later_deliveries_with_the_new_one(
    api, alice, receiver
):
    old = create_hook(api, url=receiver.url)
    response = api.post(f"/api/webhooks/{old['id']}/rotate_secret/")
    assert response.status_code == 200
    new_secret = response.json()["secret"]
    assert new_secret != old["secret"]
    receiver.secret = new_secret

    lifecycle.claim(queued_job(alice).pk)
    settle()

    assert len(receiver.requests) == 1
    assert receiver.requests[0].signature_ok
    got = receiver.requests[0]
    assert not signature_is_valid(old["secret"], got.headers, got.body)


@ROLLBACK
def test_events_are_checked_against_the_known_names(api):
    response = api.post(
        "/api/webhooks/",
        {"url": "https://example.com/hook", "events": ["job.exploded"]},
        format="json",
    )
    assert response.status_code == 400
    assert "events" in response.json()

    created = create_hook(api, events=["job.failed", "job.succeeded", "job.failed"])
    assert created["events"] == ["job.succeeded", "job.failed"]


@ROLLBACK
@pytest.mark.parametrize(
    "url", ["ftp://example.com/hook", "file:///etc/passwd", "not a url"]
)
def test_only_http_and_https_urls_are_accepted(api, url):
    response = api.post("/api/webhooks/", {"url": url}, format="json")
    assert response.status_code == 400
    assert "url" in response.json()


@ROLLBACK
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/",
        "http://10.0.0.5/",
        "http://[::1]/",
        "http://169.254.169.254/",
        "http://localhost:5678/",
        "http://[::ffff:192.168.1.2]/",
        "http://[fd12:3456::1]/",
        "http://224.0.0.1/",
        "http://0.0.0.0/",
    ],
)
def test_a_webhook_to_a_private_address_is_refused_by_default(settings, api, url):
    settings.STUDIO_WEBHOOK_ALLOW_PRIVATE = False

    response = api.post("/api/webhooks/", {"url": url}, format="json")

    assert response.status_code == 400
    message = response.json()["url"][0]
    assert "is not a public address" in message
    assert "STUDIO_WEBHOOK_ALLOW_PRIVATE=1" in message
    assert not Webhook.objects.exists()


@ROLLBACK
def test_a_webhook_cannot_be_moved_to_a_private_address(settings, api, monkeypatch):
    settings.STUDIO_WEBHOOK_ALLOW_PRIVATE = False
    monkeypatch.setattr(webhooks, "resolve", lambda host, port: ["10.9.8.7"])
    hook = create_hook(api, url="https://93.184.215.14/hook")
    base = f"/api/webhooks/{hook['id']}/"

    for url in ("http://169.254.169.254/latest/meta-data/", "http://intranet.corp/"):
        response = api.patch(base, {"url": url}, format="json")
        assert response.status_code == 400, url
        assert "STUDIO_WEBHOOK_ALLOW_PRIVATE=1" in response.json()["url"][0]
    assert Webhook.objects.get(pk=hook["id"]).url == "https://93.184.215.14/hook"


@ROLLBACK
def test_a_name_that_does_not_resolve_yet_is_accepted(settings, api):
    # It may resolve only where the deliveries run; each delivery checks it.
    settings.STUDIO_WEBHOOK_ALLOW_PRIVATE = False

    assert create_hook(api, url="https://hooks.example.invalid/abc")["id"]


def test_lan_targets_are_allowed_when_the_setting_is_on(settings, api, alice, receiver):
    settings.STUDIO_WEBHOOK_ALLOW_PRIVATE = True
    for url in ("http://10.0.0.5/", "http://[::1]/", "http://n8n.lan:5678/hook"):
        assert create_hook(api, url=url)["id"]
    Webhook.objects.all().delete()
    hook = create_hook(api, url=receiver.url)
    receiver.secret = hook["secret"]

    lifecycle.claim(queued_job(alice).pk)
    settle()

    delivery = WebhookDelivery.objects.get(webhook_id=hook["id"])
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert receiver.events == ["job.running"]
    assert receiver.requests[0].signature_ok


@ROLLBACK
def test_charlie_cannot_see_alices_webhooks(api, charlie_api):
    hook = create_hook(api)
    base = f"/api/webhooks/{hook['id']}/"

    assert charlie_api.get("/api/webhooks/").json()["count"] == 0
    assert charlie_api.get(base).status_code == 404
    assert charlie_api.get(f"{base}deliveries/").status_code == 404
    assert charlie_api.post(f"{base}rotate_secret/").status_code == 404
    assert (
        charlie_api.patch(base, {"url": "http://evil/"}, format="json").status_code
        == 404
    )
    assert charlie_api.delete(base).status_code == 404
    assert Webhook.objects.get(pk=hook["id"]).url == "http://n8n.lan:5678/webhook/abc"


@ROLLBACK
def test_anonymous_callers_are_refused():
    assert APIClient().get("/api/webhooks/").status_code in (401, 403)


def test_deliveries_lists_the_last_fifty_newest_first(api, alice, receiver):
    hook = Webhook.objects.get(pk=create_hook(api, url=receiver.url)["id"])
    job = queued_job(alice)
    lifecycle.claim(job.pk)
    settle()
    for n in range(55):
        WebhookDelivery.objects.create(
            webhook=hook, job=job, event="job.queued", payload={"n": n}
        )

    response = api.get(f"/api/webhooks/{hook.pk}/deliveries/")

    assert response.status_code == 200
    rows = response.json()
    assert len(rows) == 50
    ids = [row["id"] for row in rows]
    assert ids == sorted(ids, reverse=True)
    assert set(rows[0]) == {
        "id",
        "job",
        "event",
        "status",
        "attempts",
        "response_code",
        "error",
        "created_at",
        "delivered_at",
    }
    assert "payload" not in rows[0]


def test_deleting_a_webhook_stops_its_deliveries(api, alice, receiver):
    hook = create_hook(api, url=receiver.url)
    assert api.delete(f"/api/webhooks/{hook['id']}/").status_code == 204

    lifecycle.claim(queued_job(alice).pk)
    settle()

    assert receiver.requests == []
