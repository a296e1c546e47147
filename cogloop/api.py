"""One exception handler for the whole API: every error body is {"error": {code, message, fields}}."""

import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from redis.exceptions import RedisError
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import ApplicationError

log = logging.getLogger("cogloop.api")


def _body(code: str, message: str, fields=None, extra=None):
    error = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    if extra:
        error.update(extra)
    return {"error": error}


def exception_handler(exc, context):
    if (outage := outage_response(exc)) is not None:
        return outage
    if isinstance(exc, ApplicationError):
        return Response(_body(exc.code, exc.message, extra=exc.extra), status=exc.status)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = _body("validation_error", "The request is invalid.", fields=fields)
    elif isinstance(exc, exceptions.ParseError):
        response.data = _body("malformed_json", str(exc.detail))
    else:
        code = getattr(exc, "default_code", "error")
        response.data = _body(code, str(getattr(exc, "detail", exc)))
    return response


# -- outages --------------------------------------------------------------------------------

# The database or Redis away for a moment: the client should retry, so a 503 in the API's
# shape rather than Django's HTML 500.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    DatabaseOperationalError,
    DatabaseInterfaceError,
    RedisError,
)


def outage_response(exc) -> Response | None:
    if not isinstance(exc, OUTAGE_ERRORS):
        return None
    log.warning("answered 503 during an outage: %s: %s", type(exc).__name__, exc)
    response = Response(
        _body("unavailable", "A service this request needs is briefly unavailable; retry shortly."),
        status=503,
    )
    response["Retry-After"] = "5"
    return response
