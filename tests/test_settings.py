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
