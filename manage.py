#!/usr/bin/env python
import os
import sys

# Commands that run until stopped check the database before they start: a wrong DATABASE_URL is
# then one line, not a traceback (runserver's reloader would print one and keep waiting).
PREFLIGHT = {"runserver", "qcluster"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    # runserver opens a thread per request: it takes connections from a bounded pool. The
    # django-q2 cluster forks, and a pool must not cross a fork (config/settings.py, "Database").
    if command == "runserver":
        os.environ.setdefault("DB_POOL", "true")
        # Django's dev server listens with a backlog of 10: 32 clients connecting at once had
        # some connections reset by the kernel (2-4 of 288 requests). The system's maximum instead.
        import socket

        from django.core.servers import basehttp

        basehttp.WSGIServer.request_queue_size = socket.SOMAXCONN
    elif command == "qcluster":
        os.environ["DB_POOL"] = "false"
    os.environ.setdefault("DB_APPLICATION_NAME", f"inventory {command}".strip())

    from config import startup

    try:
        settings = startup.load_settings()
        if command in PREFLIGHT:
            startup.check_database(settings, web_processes=int(command == "runserver"))
    except startup.StartupError as err:
        sys.exit(f"manage.py {command}: {err}")

    from django.core.management import execute_from_command_line
    from django.db import OperationalError

    try:
        execute_from_command_line(sys.argv)
    except OperationalError:
        message = startup.unreachable_message(settings.DATABASES["default"])
        if message is None:  # the database answers: a real error, keep its traceback
            raise
        sys.exit(f"manage.py {command}: {message}")


if __name__ == "__main__":
    main()
