"""ASGI entry point. Sync views run in worker threads: connections come from a bounded pool."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DB_POOL", "true")
os.environ.setdefault("DB_APPLICATION_NAME", "inventory web")
application = get_asgi_application()
