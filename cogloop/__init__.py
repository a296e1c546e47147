"""Cogloop's ground floor: settings, the Celery app (cogloop.celery), urls, errors, logs, metrics, outbox."""
