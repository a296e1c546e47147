"""The Celery app. Embedded mode uses kombu's filesystem transport under var/ (no server)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cogloop.settings")

app = Celery("cogloop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
