from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerOperationalError


class ApplicationError(Exception):
    """A business rule refused the request. ``code`` is stable; ``status`` the HTTP status."""

    def __init__(self, message: str, *, code: str = "invalid", status: int = 400, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.extra = extra or {}


# What a task retries with backoff: the database or the broker was briefly away. Tasks are
# idempotent (a status guard or a unique row), so running one again is safe.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    BrokerOperationalError,
    ConnectionError,
    TimeoutError,
)
# Celery's retry options for those errors (autoretry_for with exponential backoff, jittered).
RETRY_TRANSIENT = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 10,
}
