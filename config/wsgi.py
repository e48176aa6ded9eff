"""WSGI entry point (gunicorn: config/gunicorn.conf.py). A WSGI server may run requests in
threads, so its connections come from a bounded pool (config/settings.py, "Database")."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DB_POOL", "true")
os.environ.setdefault("DB_APPLICATION_NAME", "inventory web")
application = get_wsgi_application()
