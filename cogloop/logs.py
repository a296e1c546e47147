"""Structured logs: one JSON object per line, for a log pipeline (Loki, Elasticsearch, ...).

Every record carries ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the process
and thread, the fields passed with ``extra={...}``, the ``request_id`` of the HTTP request or
the ``task_id`` of the Celery task it was written for, and, when there is one, the formatted
exception. Chosen with ``LOG_FORMAT=json`` (the default in production); ``plain`` is for a
terminal. No Django imports: settings load this module.

Every line a production process writes goes through here: Django's and the apps' loggers,
gunicorn's error and access logs (docker/gunicorn.conf.py), Celery's (cogloop.celery hooks
its logging signals), Python warnings (``logging.captureWarnings``) and transformers' own
logger, which is told to propagate instead of printing (``route_library_logs``).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime

# The attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
task_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("task_id", default=None)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class ContextFilter(logging.Filter):
    """Stamps each record with the request or task it was written for (None outside either)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        if getattr(record, "task_id", None) is None:
            record.task_id = task_id.get()
        return True


class GunicornAccessFormatter(JsonFormatter):
    """gunicorn's access record as fields (its ``args`` is the atoms dict), not one long line."""

    def format(self, record: logging.LogRecord) -> str:
        atoms = record.args if isinstance(record.args, dict) else {}
        if atoms:
            record.http = {
                "method": atoms.get("m"),
                "path": atoms.get("U"),
                "status": atoms.get("s"),
                "bytes": atoms.get("B"),
                "duration_ms": round(int(atoms.get("D") or 0) / 1000, 2),
                "remote": atoms.get("h"),
                "user_agent": atoms.get("a"),
            }
            # The id the request ran under: the middleware answers it in X-Request-ID.
            record.request_id = atoms.get("{x-request-id}o") or None
        return super().format(record)


# A client's id is kept when it is short and plain (it ends up in log pipelines); else a new one.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


class RequestIdMiddleware:
    """Reads ``X-Request-ID`` (the proxy's or the client's) or makes one, and answers it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get("X-Request-ID", "")
        rid = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        request.request_id = rid
        token = request_id.set(rid)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response["X-Request-ID"] = rid
        return response


def route_library_logs(*, transformers: bool) -> None:
    """Warnings and (with ``transformers``) transformers' messages into logging, so into this
    format, instead of raw stderr. Only roles that load models ask for transformers: a process
    that never does must not import it for this."""
    logging.captureWarnings(True)
    if transformers or "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_default_handler()
        transformers_logging.enable_propagation()
        # Progress bars redraw one line with carriage returns: noise in a log pipeline.
        transformers_logging.disable_progress_bar()
