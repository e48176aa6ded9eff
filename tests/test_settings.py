"""Settings and deployment checks, including the pitfalls listed in ARCHITECTURE.md."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import caches
from django_tenants.utils import schema_context

ROOT = Path(__file__).resolve().parent.parent


def test_it_passes_check_deploy_under_production_settings():
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "inventory.example.com,.inventory.example.com",
        "BASE_DOMAIN": "inventory.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_it_refuses_to_start_in_production_without_a_secret_key():
    env = {
        k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOW_INSECURE_DEV_SECRET"}
    }
    env["DEBUG"] = "false"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_it_rejects_a_malformed_boolean_setting():
    env = {**os.environ, "DEBUG": "maybe"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "DEBUG must be one of" in result.stderr


def test_it_admits_tenant_subdomains_as_hosts():
    assert ".localhost" in settings.ALLOWED_HOSTS


def test_it_keeps_sessions_on_the_host_that_created_them():
    # A login on the platform host is not sent to tenant subdomains (cookie without Domain).
    assert settings.SESSION_COOKIE_DOMAIN is None


@pytest.mark.django_db
def test_it_sets_a_host_only_session_cookie_at_login(api, acme_owner):
    from tests.factories import PASSWORD

    response = api.post("/login/", {"username": "acme-owner", "password": PASSWORD})
    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["domain"] == ""
    assert cookie["httponly"]


@pytest.mark.django_db
def test_it_keeps_the_default_cache_per_tenant(acme, globex):
    cache = caches["default"]
    with schema_context("acme"):
        cache.set("greeting", "hello acme")
    with schema_context("globex"):
        assert cache.get("greeting") is None
    with schema_context("acme"):
        assert cache.get("greeting") == "hello acme"


def test_it_never_uses_plain_migrate_in_scripts():
    plain_migrate = re.compile(r"manage\.py\s+migrate(?!_schemas)\b")
    for path in [ROOT / "Makefile", ROOT / ".ci" / "run", *ROOT.glob("scripts/*")]:
        text = path.read_text()
        assert not plain_migrate.search(text), f"{path.name} calls plain migrate"
    assert "migrate_schemas" in (ROOT / "Makefile").read_text()


def _manage_check(**env_overrides):
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOW_INSECURE_DEV_SECRET"}}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_refuses_the_public_development_key_with_debug_false():
    # ALLOW_INSECURE_DEV_SECRET used to run production on the key printed in settings.py, which
    # also signs API keys, with `check --deploy` clean.
    result = _manage_check(DEBUG="false", ALLOW_INSECURE_DEV_SECRET="true")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "manage.py check: ALLOW_INSECURE_DEV_SECRET is refused with DEBUG=false: the development "
        "key is public. Set SECRET_KEY (see .env.example), or DEBUG=true for development."
    )


@pytest.mark.parametrize(
    "name, value",
    [
        ("SECRET_KEY", "dev-only-insecure-secret-key-do-not-use-in-production-0123456789"),
        ("SECRET_KEY", "change-me-to-50-plus-random-characters"),  # .env.example's placeholder
        ("API_KEY_HMAC_SECRET", "change-me"),
    ],
)
def test_it_refuses_known_keys_with_debug_false(name, value):
    env = {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), name: value}
    result = _manage_check(**env)
    assert result.returncode == 1
    assert result.stderr.startswith(f"manage.py check: {name} is the development key"), result.stderr


def test_it_still_runs_development_on_the_development_key():
    result = _manage_check(DEBUG="true")
    assert result.returncode == 0, result.stderr


def _check_deploy_env() -> dict[str, str]:
    line = re.search(r"^CHECK_DEPLOY_ENV = (.+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    return dict(pair.split("=", 1) for pair in line.split())


def test_it_admits_tenant_subdomains_of_base_domain_even_when_allowed_hosts_omits_them():
    env = {**os.environ, **_check_deploy_env(), "ALLOWED_HOSTS": "inventory.example.com"}
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    code = "from django.conf import settings; print(','.join(settings.ALLOWED_HOSTS))"
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.strip().split(",") == ["inventory.example.com", ".inventory.example.com"]


def test_it_routes_tenant_subdomains_under_check_deploys_hosts(django_db_setup):
    # A real gunicorn in check-deploy's environment: the platform host and a tenant subdomain
    # pass host validation (301 to https, no BEHIND_PROXY here); any other host is a 400.
    from tests.server_processes import PY, Server, free_port, request, server_env

    port = free_port()
    env = server_env(**_check_deploy_env(), SECRET_KEY=secrets.token_urlsafe(50), PORT=str(port))
    env["WEB_CONCURRENCY"] = "1"
    server = Server([PY, "-m", "gunicorn", "-c", "config/gunicorn.conf.py"], env, port)
    try:
        server.wait_ready()
        answers = {
            host: request(port, "GET", "/api/items-enterprise", headers={"Host": host})[:2]
            for host in ("inventory.example.com", "acme.inventory.example.com", "evil.example.org")
        }
    finally:
        server.stop()
    statuses = {host: status for host, (status, _) in answers.items()}
    assert statuses == {
        "inventory.example.com": 301,
        "acme.inventory.example.com": 301,
        "evil.example.org": 400,
    }, server.text
    location = dict(answers["acme.inventory.example.com"][1])["Location"]
    assert location == "https://acme.inventory.example.com/api/items-enterprise"
