"""Real receivers for the alerts tests: an SMTP server (aiosmtpd) and an HTTP server (http.server
in a thread), each on a free port, recording what they receive. No transport is mocked."""

from __future__ import annotations

import hmac
import json
import threading
import time
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from tests.server_processes import free_port


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        msg = message_from_bytes(envelope.content)
        self.messages.append(
            {
                "to": envelope.rcpt_tos,
                "from": envelope.mail_from,
                "subject": msg["Subject"],
                "body": msg.get_payload(decode=True).decode(),
            }
        )
        return "250 OK"

    @property
    def subjects(self) -> list[str]:
        return [m["subject"] for m in self.messages]


@pytest.fixture
def smtp(settings):
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    try:
        yield inbox
    finally:
        controller.stop()


class Hook:
    """Answers `status` after `delay` seconds; records every request with its signature check."""

    def __init__(self, secret: str, status: int = 200, delay: float = 0):
        self.secret, self.status, self.delay = secret, status, delay
        self.requests: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(hook.secret.encode(), body, "sha256").hexdigest()
                hook.requests.append(
                    {
                        "at": time.monotonic(),
                        "path": self.path,
                        "payload": json.loads(body),
                        "signed": hmac.compare_digest(
                            self.headers.get("X-Alert-Signature", ""), expected
                        ),
                    }
                )
                time.sleep(hook.delay)
                self.send_response(hook.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    hooks = []

    def make(secret: str = "s3cret-for-tests", status: int = 200, delay: float = 0) -> Hook:
        hooks.append(Hook(secret, status, delay))
        return hooks[-1]

    yield make
    for hook in hooks:
        hook.stop()


@pytest.fixture
def worker_alive(db):
    """A fresh heartbeat, so only the alert a test is about opens."""
    from operations.models import WorkerHeartbeat

    WorkerHeartbeat.objects.update_or_create(
        cluster="inventory", defaults={"beat_at": timezone.now()}
    )


@pytest.fixture
def deliver_now(settings, monkeypatch, django_capture_on_commit_callbacks):
    """For tests not about asynchrony: the worker's task runs in this process (django-q2's sync
    mode) when the evaluation's transaction 'commits' (the test's own transaction never does)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)

    def evaluate():
        from alerts.services import alerts_evaluate

        with django_capture_on_commit_callbacks(execute=True):
            return alerts_evaluate()

    return evaluate
