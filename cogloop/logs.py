"""Structured logs: one JSON object per line, for a log pipeline (Loki, Elasticsearch, ...).

Every record carries ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the process
and thread, the fields passed with ``extra={...}`` and, when there is one, the formatted
exception. Chosen with ``LOG_FORMAT=json`` (the default in production); ``plain`` is for a
terminal. No Django imports: settings load this module.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# The attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


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
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
