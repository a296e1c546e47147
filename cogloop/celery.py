"""The Celery app. Embedded mode uses kombu's filesystem transport under var/ (no server).

Its processes log through Django's LOGGING (JSON in production), each task's lines carrying
its ``task_id``; beat runs cogloop.beat's locked database scheduler. With
PROMETHEUS_MULTIPROC_DIR set a worker's processes write their metrics there (compose mounts a
tmpfs: a fresh directory at every container start), and with ``CELERY_METRICS_PORT`` the
worker serves them, added up, at ``:PORT/metrics``.
"""

import logging
import logging.config
import os

from celery import Celery, signals

from cogloop.logs import route_library_logs
from cogloop.logs import task_id as current_task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cogloop.settings")

app = Celery("cogloop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.celeryd_init.connect
def _logging_before_the_worker_starts(**kwargs):
    # Earlier than setup_logging: the worker's start-up checks warn (running as root) before it.
    _logging_from_django()


@signals.setup_logging.connect
def _logging_from_django(**kwargs):
    # Connected, this replaces Celery's own handlers: every line in the project's format.
    from django.conf import settings  # configured by now (setup_logging fires after app load)

    logging.config.dictConfig(settings.LOGGING)
    route_library_logs(transformers=settings.COGLOOP_ROLE in ("worker", "trainer", "all"))


@signals.task_prerun.connect
def _task_id_in_logs(task_id=None, **kwargs):
    current_task.set(task_id)


@signals.task_postrun.connect
def _task_id_out_of_logs(**kwargs):
    current_task.set(None)


@signals.worker_ready.connect
def _metrics_serve(**kwargs):
    port = os.environ.get("CELERY_METRICS_PORT")
    if port:
        from prometheus_client import CollectorRegistry, multiprocess, start_http_server

        registry = None
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        start_http_server(int(port), registry=registry) if registry else start_http_server(int(port))


@signals.worker_process_shutdown.connect
def _metrics_process_dead(pid=None, **kwargs):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
