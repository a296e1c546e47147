"""gunicorn settings of both HTTP roles: `gunicorn -c docker/gunicorn.conf.py cogloop.wsgi` (web)
or `... inference.wsgi` (inference). Values come from the environment like everything else.

- Logs: gunicorn's error and access logs as JSON lines (cogloop.logs), the access line with
  the request's X-Request-ID as the application answered it.
- Metrics: every worker writes into PROMETHEUS_MULTIPROC_DIR, emptied when the master starts;
  a worker that exits is marked dead, so its gauges leave /metrics while its counters still
  count; /metrics (ops.health) adds up the live workers and the dead ones' counters.
"""

import os
import shutil

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# A generation can take GENERATE_TIMEOUT_S (120 s); gunicorn must not kill the worker first.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "180"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "60"))
# Behind the proxy in the same network: trust its X-Forwarded-* headers.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(D)sus %({x-request-id}o)s'

_level = os.environ.get("LOG_LEVEL", "INFO").upper()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "cogloop.logs.ContextFilter"}},
    "formatters": {
        "json": {"()": "cogloop.logs.JsonFormatter"},
        "access": {"()": "cogloop.logs.GunicornAccessFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["context"]},
        "access": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stdout"},
    },
    "root": {"level": "WARNING", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": _level, "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
    },
}


def on_starting(server):
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
