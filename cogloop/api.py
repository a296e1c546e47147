"""One exception handler for the whole API: every error body is {"error": {code, message, fields}}."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import ApplicationError


def _body(code: str, message: str, fields=None, extra=None):
    error = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    if extra:
        error.update(extra)
    return {"error": error}


def exception_handler(exc, context):
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
