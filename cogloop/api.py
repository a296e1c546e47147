"""One exception handler for the whole API: every error body is {"error": {code, message, fields}}."""

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from django.http import JsonResponse
from django.views import defaults
from drf_spectacular.utils import OpenApiResponse
from redis.exceptions import RedisError
from rest_framework import exceptions, serializers
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
    if isinstance(exc, RequestDataTooBig):
        return Response(_too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE), status=413)
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


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def _too_large(limit: int) -> dict:
    return _body(
        "request_too_large",
        f"the request body is over the limit of {limit} bytes; send less (a bulk in smaller parts)",
        extra={"limit": limit},
    )


# Django's handlers for what never reaches a view or what a view let escape: under /api/ they
# answer the API's error shape (a client parses JSON), elsewhere Django's own pages.


def bad_request(request, exception):
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(_too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE), status=413)
    return JsonResponse(_body("bad_request", "The request could not be read."), status=400)


def page_not_found(request, exception):
    if not _is_api(request):
        return defaults.page_not_found(request, exception)
    return JsonResponse(_body("not_found", f"no API endpoint at {request.path}"), status=404)


def server_error(request):
    if not _is_api(request):
        return defaults.server_error(request)
    # The cause is in the log (django.request); the client learns only that it was not its fault.
    return JsonResponse(
        _body("server_error", "The server failed on this request; the failure is logged."), status=500
    )


# -- the error shape in the OpenAPI schema ---------------------------------------------------


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="stable, for programs: validation_error, not_found, ...")
    message = serializers.CharField(help_text="for people")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="the fields (or headers) at fault, each with its messages",
    )
    limit = serializers.IntegerField(required=False, help_text="the limit a 413 exceeded")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


ERROR_DESCRIPTIONS = {
    400: "malformed JSON, an invalid field or header (named in `fields`), or a tampered cursor",
    401: "no valid credentials",
    403: "credentials that are not allowed here",
    404: "no such object, or another app's",
    409: "an Idempotency-Key reused with another request, or a state that refuses the change",
    413: "over a documented limit (named in `limit`)",
    429: "too many requests for this key, or too many failed logins",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """The documented error body under each of ``statuses``, for ``extend_schema(responses=...)``."""
    return {s: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[s]) for s in statuses}


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
