"""gunicorn settings for `make serve`, the Procfile and deploy/inventory-web.service:

    gunicorn -c config/gunicorn.conf.py config.wsgi

Every value can be overridden from the environment (PORT, HOST, WEB_CONCURRENCY, ...) or on
the command line. README "Production" explains the choices and the connection arithmetic.
"""

import os
import subprocess
import sys


def _cpus() -> int:
    # The CPUs this process may run on (a container's or a taskset's share), not the machine's.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


wsgi_app = "config.wsgi:application"
# 127.0.0.1 by default: production sits behind a proxy on the same host. A container or a
# platform that routes to the process sets HOST=0.0.0.0 (the Procfile does).
bind = [f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"]
# gunicorn's rule of thumb, 2 x CPUs + 1: a worker waiting on PostgreSQL leaves its CPU to another.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * _cpus() + 1)
# Sync workers: one request at a time per process, so one database connection per worker and no
# thread-safety questions. Requests are short; slow clients are the proxy's business.
worker_class = "sync"
# Off: each worker imports the app after the fork, so database connections (and the pool's
# threads) are never shared between processes, and `kill -HUP` loads new code without a restart.
preload_app = False
# A request still running after this is killed (and logged); CSV exports of big organisations
# are the slowest pages.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# On TERM (or HUP), requests in progress get this long to finish before their worker is killed.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# Access and error logs on stdout/stderr (systemd's journal, the platform's log stream);
# GUNICORN_ACCESS_LOG=off when the proxy logs requests already (or for a benchmark).
accesslog = None if os.environ.get("GUNICORN_ACCESS_LOG", "-") in ("", "off") else "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms host=%({host}i)s'
# X-Forwarded-* are honoured only from these addresses (the proxy); FORWARDED_ALLOW_IPS overrides.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
proc_name = "inventory-web"

# A sync worker has one thread, so a pool of one connection per worker is all it can use; the
# workers inherit this environment.
os.environ.setdefault("DB_POOL", "true")
os.environ.setdefault("DB_POOL_MAX_SIZE", "1")
os.environ.setdefault("DB_APPLICATION_NAME", "inventory web")


def on_starting(server):
    """Before the first worker: production settings, a reachable database and a connection
    budget that fits, or one line and exit 1 (instead of every worker failing to boot)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "config.startup",
            "--production",
            "--web-processes",
            str(server.cfg.workers),
            "--name",
            "gunicorn",
        ],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    if result.returncode:
        sys.exit(result.returncode)
