"""Production settings for real: the documented set-up's collectstatic (`make setup`, under
DEBUG=true), then `make serve`'s server (gunicorn and the worker, DEBUG=false, behind a proxy
that says https) renders every page to a signed-in platform admin, with hashed static files."""

from __future__ import annotations

import re
import signal
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest

from tests.factories import PASSWORD, make_user
from tests.server_processes import (
    PRODUCTION,
    PY,
    Server,
    collect_static,
    disconnect_others,
    free_port,
    request,
    seed_two_tenants,
    server_env,
    unseed,
    wait_for_backend,
)

ADMIN = "prod-admin"


class Session:
    """A client that keeps cookies (secure ones too: the proxy in front speaks https)."""

    def __init__(self, port: int):
        self.port, self.cookies = port, {}

    def send(self, method: str, path: str, *, form: dict | None = None):
        headers = {"X-Forwarded-Proto": "https"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = "https://localhost"
        status, response_headers, content = request(
            self.port, method, path, headers=headers, body=body
        )
        for name, value in response_headers:
            if name.lower() == "set-cookie":
                for key, morsel in SimpleCookie(value).items():
                    self.cookies[key] = morsel.value
        return status, dict(response_headers), content


@pytest.fixture(scope="module")
def production(django_db_setup, django_db_blocker, tmp_path_factory):
    static_root = tmp_path_factory.mktemp("staticfiles")
    collect_static(static_root)
    with django_db_blocker.unblock():
        data = seed_two_tenants()
        make_user(ADMIN, superuser=True)
        port = free_port()
        env = server_env(
            **PRODUCTION,
            PORT=str(port),
            WEB_CONCURRENCY="2",
            STATIC_ROOT=str(static_root),
            BACKUP_DIR=str(tmp_path_factory.mktemp("backups")),
        )
        server = Server([PY, "deploy/serve.py"], env, port)
        try:
            server.wait_ready()
            wait_for_backend("inventory qcluster")  # its heartbeat makes /health 200
            yield {"port": port, "data": data, "server": server}
        finally:
            server.stop(signal.SIGTERM)
            disconnect_others()
            unseed([ADMIN])


@pytest.fixture(scope="module")
def admin(production):
    session = Session(production["port"])
    status, _, page = session.send("GET", "/login/")
    assert status == 200, page[:300]
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
    status, headers, _ = session.send(
        "POST",
        "/login/",
        form={"username": ADMIN, "password": PASSWORD, "csrfmiddlewaretoken": token},
    )
    assert status == 302 and headers["Location"] == "/", (status, headers)
    return session


def test_it_renders_every_page_with_debug_false_after_the_documented_set_up(production, admin):
    item = production["data"]["acme"]["items"][0]
    pages = [
        "/fleet/",
        "/orgs/",
        "/orgs/acme/runbook/",
        "/reconciliation/",
        "/orgs/acme/balances/",
        f"/orgs/acme/items/{item.id}/",
        "/orgs/acme/api-keys/",
        "/backups/",
        "/admin/",
        "/health",
    ]
    statuses = {path: admin.send("GET", path)[0] for path in pages}
    assert statuses == dict.fromkeys(pages, 200), production["server"].text
    # The home page sends the platform admin to the fleet; the login page renders signed out too.
    status, headers, _ = admin.send("GET", "/")
    assert (status, headers.get("Location")) == (302, "/fleet/")
    assert Session(production["port"]).send("GET", "/login/")[0] == 200


def test_it_links_and_serves_the_hashed_static_files(production, admin):
    _, _, page = admin.send("GET", "/fleet/")
    stylesheet = re.search(rb'href="(/static/css/app\.[0-9a-f]{12}\.css)"', page)
    assert stylesheet, page[:600]
    status, headers, css = admin.send("GET", stylesheet.group(1).decode())
    assert status == 200 and css
    assert "immutable" in headers["Cache-Control"]  # whitenoise: hashed names cache forever


def test_it_sends_secure_cookies_and_hsts_in_production(production, admin):
    status, headers, _ = Session(production["port"]).send("GET", "/login/")
    assert status == 200
    cookie = headers["Set-Cookie"]
    assert "csrftoken=" in cookie and "Secure" in cookie
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
