"""Settings for Inventory Enterprise. Every deployment difference comes from the environment
(see .env.example); DEBUG defaults to off, and production refuses to start without a SECRET_KEY."""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from config.env import env_bool, env_decimal, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
# A local, git-ignored .env (written by `make setup` for development) fills in what the real
# environment does not set; the environment always wins.
load_dotenv(BASE_DIR / ".env", override=False)

DEBUG = env_bool("DEBUG", False)
_DEV_SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production-0123456789"
SECRET_KEY = env_str("SECRET_KEY")
if not DEBUG:
    # The development key is public (it is in this file) and also signs API keys (below): no
    # switch may put it into production. .env.example's placeholder is refused for the same reason.
    if env_bool("ALLOW_INSECURE_DEV_SECRET", False):
        raise ImproperlyConfigured(
            "ALLOW_INSECURE_DEV_SECRET is refused with DEBUG=false: the development key is "
            "public. Set SECRET_KEY (see .env.example), or DEBUG=true for development."
        )
    if not SECRET_KEY:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment (see .env.example); for local "
            "development `make run` sets DEBUG=true."
        )
    for _name in ("SECRET_KEY", "API_KEY_HMAC_SECRET"):
        if env_str(_name, "") == _DEV_SECRET_KEY or env_str(_name, "").startswith("change-me"):
            raise ImproperlyConfigured(
                f"{_name} is the development key or .env.example's placeholder; generate one: "
                "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
            )
SECRET_KEY = SECRET_KEY or _DEV_SECRET_KEY
# API keys are stored as HMAC-SHA256 under this key; rotating SECRET_KEY should not void keys.
API_KEY_HMAC_SECRET = env_str("API_KEY_HMAC_SECRET") or SECRET_KEY

BASE_DOMAIN = env_str("BASE_DOMAIN", "localhost").lower()
# Host serving the platform pages (public schema), usually BASE_DOMAIN itself.
PUBLIC_DOMAIN = env_str("PUBLIC_DOMAIN", BASE_DOMAIN).lower()
# The platform host and every tenant subdomain of BASE_DOMAIN are always admitted, also when
# ALLOWED_HOSTS is set: routing serves them by construction, and an explicit list that forgot
# `.BASE_DOMAIN` answered 400 on every tenant subdomain. ALLOWED_HOSTS adds other names.
ALLOWED_HOSTS = list(
    dict.fromkeys(
        [
            *env_list("ALLOWED_HOSTS", "localhost,.localhost,127.0.0.1,testserver"),
            BASE_DOMAIN,
            f".{BASE_DOMAIN}",
            PUBLIC_DOMAIN,
        ]
    )
)
# Slug (or UUID) of the organisation used when nothing else names one; empty means none.
DEFAULT_ORG = env_str("DEFAULT_ORG", "") or None

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
EMBEDDED_DATABASE = not DATABASE_URL
if EMBEDDED_DATABASE:
    from config.embedded_db import embedded_database_url

    DATABASE_URL = embedded_database_url()
_db = dj_database_url.parse(DATABASE_URL)
_db["ENGINE"] = "django_tenants.postgresql_backend"
_db.setdefault("OPTIONS", {})
# Names the process kind in pg_stat_activity (manage.py: "inventory <command>", wsgi: "web").
_db["OPTIONS"].setdefault("application_name", env_str("DB_APPLICATION_NAME", "inventory")[:63])
_db["CONN_HEALTH_CHECKS"] = True
# How many connections each process holds, so that all of them fit the server's max_connections
# (README "Production" has the arithmetic; config/startup.py checks it when a server starts).
# Web servers take connections from a bounded pool per process (Django's psycopg pool): runserver
# opens a thread per request, and with persistent connections every thread kept its own until
# PostgreSQL refused new clients. manage.py turns the pool on for runserver, config/wsgi.py for
# WSGI servers. Commands and the django-q2 cluster are single-threaded and keep one persistent
# connection per process; the cluster forks, and a pool's sockets and threads must not cross a
# fork, so manage.py keeps the pool off for qcluster.
DB_POOL = env_bool("DB_POOL", False)
if DB_POOL:
    _pool = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 1),
        "max_size": env_int("DB_POOL_MAX_SIZE", 4),
        # A request waits this long for a free connection instead of opening one more.
        "timeout": env_int("DB_POOL_TIMEOUT", 30),
    }
    if not 0 <= _pool["min_size"] <= _pool["max_size"] or _pool["max_size"] < 1:
        raise ImproperlyConfigured("DB_POOL_MIN_SIZE must be 0..DB_POOL_MAX_SIZE, and that >= 1")
    _db["OPTIONS"]["pool"] = _pool
    _db["CONN_MAX_AGE"] = 0  # the pool's rule: closing a connection hands it back to the pool
else:
    _db["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 60)
# Several test runs on one server (parallel checkouts, helpers) each need their own test database.
if env_str("TEST_DATABASE_NAME"):
    _db["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}
DATABASES = {"default": _db}
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Apps -----------------------------------------------------------------------------------
SHARED_APPS = [
    "django_tenants",
    "tenants",
    "operations",
    "reconciliation",
    "alerts",  # reads the apps above; none of them imports it
    "dashboard",  # the pages that span organisations, and fleet runs; nothing imports it
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "ninja",  # django-ninja: its swagger-ui static files serve /api/docs (no CDN)
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "inventory",
]
INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]
TENANT_MODEL = "tenants.Organization"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
ROOT_URLCONF = "config.urls_tenant"
# Issue `SET search_path` only when the tenant changes, not before every cursor; routing sets the
# path in its own query (tenants/selectors.py), so a keyed request needs no SET at all.
TENANT_LIMIT_SET_CALLS = True
# The migrated schema new organisations are copied from (tenants/clone.py; rebuilt when the code's
# migrations change). A leading underscore: no slug makes it. TENANT_CREATION_FAKES_MIGRATIONS
# stays off: django-tenants' own clone_schema is not used.
TENANT_BASE_SCHEMA = "_tenant_template"
# migrate_schemas skips the organisations whose django_migrations already records every migration
# on disk (200 s -> seconds at 1,000 organisations with nothing pending).
GET_EXECUTOR_FUNCTION = "operations.migrate_executor.executor_get"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # /health answered here, ahead of routing and sessions (operations/middleware.py).
    "operations.middleware.HealthProbeMiddleware",
    "config.middleware.RejectNulCharactersMiddleware",
    "tenants.middleware.TenantRoutingMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "config.middleware.UserTimeZoneMiddleware",
    "tenants.middleware.TenantAccessMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.context_processors.navigation",
            ],
        },
    },
]
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# collectstatic always writes the hashed, compressed files and their manifest, also in
# development: a checkout set up with DEBUG=true (make setup) then serves DEBUG=false too (it
# answered 500 "Missing staticfiles manifest entry" on every page). With DEBUG=true, pages link
# the plain names, which whitenoise serves from the app folders (WHITENOISE_USE_FINDERS).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "config.storage.DevelopmentStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Caches ---------------------------------------------------------------------------------
# Nothing that grants or refuses access is cached: routing reads keys, organisations and domains
# from PostgreSQL on every request (tenants/selectors.py). The default cache is per process and
# tenant-aware (keys carry the schema); nothing in the product relies on it being shared.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "KEY_PREFIX": "ie",
    },
}

# --- Security -------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the cookie
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
# Behind a TLS-terminating proxy (README "Production"): trust its X-Forwarded-Proto, and, only
# if it rewrites Host, its X-Forwarded-Host (the proxy must then set or strip that header).
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_PROXY", False) else None
)
USE_X_FORWARDED_HOST = env_bool("USE_X_FORWARDED_HOST", False)
SECURE_REDIRECT_EXEMPT = [r"^health$"]
X_FRAME_OPTIONS = "DENY"
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
# Sessions live on the host that created them: a login on the platform host is not sent to
# tenant subdomains unless SESSION_COOKIE_DOMAIN (e.g. ".example.com") says otherwise.
SESSION_COOKIE_DOMAIN = env_str("SESSION_COOKIE_DOMAIN") or None

# --- Background jobs (django-q2, ORM broker) -------------------------------------------------
Q_CLUSTER = {
    "name": "inventory",
    "orm": "default",
    "workers": env_int("Q_WORKERS", 2),
    "timeout": env_int("Q_TIMEOUT", 3600),
    "retry": env_int("Q_RETRY", 3700),  # must exceed timeout, or a long job runs twice
    "max_attempts": 1,
    "save_limit": 1000,
    "catch_up": False,
    "poll": 1,
    "label": "Background jobs",
    "sync": env_bool("Q_SYNC", False),
}
WORKER_HEARTBEAT_MAX_AGE_SECONDS = env_int("WORKER_HEARTBEAT_MAX_AGE_SECONDS", 300)
HEALTH_REQUIRE_WORKER = env_bool("HEALTH_REQUIRE_WORKER", True)
# A running job beats this often (operations/jobs.py); one silent for longer than
# JOB_STALE_SECONDS is given up as stopped (keep it well above the beat).
JOB_HEARTBEAT_SECONDS = env_int("JOB_HEARTBEAT_SECONDS", 10)
JOB_STALE_SECONDS = env_int("JOB_STALE_SECONDS", 120)

# --- Domain settings ------------------------------------------------------------------------
RECONCILIATION_TOLERANCE = env_decimal("RECONCILIATION_TOLERANCE", "0.01")
LEDGER_BATCH_MAX = env_int("LEDGER_BATCH_MAX", 1000)
BACKUP_DIR = Path(env_str("BACKUP_DIR", str(BASE_DIR / "var" / "backups")))
BACKUP_RETENTION = env_int("BACKUP_RETENTION", 14)
BACKUP_MAX_AGE_HOURS = env_int("BACKUP_MAX_AGE_HOURS", 26)
# Balance CSV exports (inventory/services/balance_export.py): a view of more rows than this is
# written by a background job for download instead of streamed; its files live here, private,
# for EXPORT_MAX_AGE_HOURS; a `.part` file untouched this long lost its writer.
EXPORT_STREAM_MAX_ROWS = env_int("EXPORT_STREAM_MAX_ROWS", 50_000)
EXPORT_DIR = Path(env_str("EXPORT_DIR", str(BASE_DIR / "var" / "exports")))
EXPORT_MAX_AGE_HOURS = env_int("EXPORT_MAX_AGE_HOURS", 24)
EXPORT_PART_STALE_SECONDS = env_int("EXPORT_PART_STALE_SECONDS", 900)
# CSV imports (inventory/services/ledger_bulk_load.py): a file of at least this many rows into a
# ledger holding fewer rows than the file is loaded with the ledger's secondary indexes and
# foreign keys dropped and rebuilt in the same transaction, if the ledger's lock comes within
# the timeout; the index builds sort in this much memory.
IMPORT_BULK_MIN_ROWS = env_int("IMPORT_BULK_MIN_ROWS", 50_000)
IMPORT_BULK_LOCK_TIMEOUT_MS = env_int("IMPORT_BULK_LOCK_TIMEOUT_MS", 2_000)
IMPORT_BULK_SORT_MB = env_int("IMPORT_BULK_SORT_MB", 512)

# --- Alerts (alerts/): email over SMTP, links in messages ----------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
ALERT_FROM_EMAIL = env_str("ALERT_FROM_EMAIL", f"alerts@{BASE_DOMAIN}")
# Absolute links in messages ("where to click") start with this.
SITE_URL = env_str("SITE_URL", "http://localhost:8000" if DEBUG else f"https://{PUBLIC_DOMAIN}")
SITE_URL = SITE_URL.rstrip("/")
ALERT_WEBHOOK_TIMEOUT_SECONDS = env_int("ALERT_WEBHOOK_TIMEOUT_SECONDS", 5)
ALERT_MAX_ATTEMPTS = env_int("ALERT_MAX_ATTEMPTS", 5)
# A failed delivery is retried after base x 2^(attempts-1) seconds (by the minute evaluation).
ALERT_RETRY_BASE_SECONDS = env_int("ALERT_RETRY_BASE_SECONDS", 60)
# Organisations' webhooks may not call loopback/private addresses unless this is true.
ALERT_ALLOW_PRIVATE_TARGETS = env_bool("ALERT_ALLOW_PRIVATE_TARGETS", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"pgserver": {"level": "WARNING"}},
}
