"""Brute-force protection for passwords (django-axes): the login form, the admin and HTTP
Basic auth on the staff API all count failures per username and address, and a locked pair
is refused, the right password included, until the cooling-off period has passed."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, BasicAuthentication


def _minutes() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)


def _message() -> str:
    return f"too many failed logins for this user from this address; try again in {_minutes()} minutes"


class LockoutBackend(AxesStandaloneBackend):
    """Axes' check, first in AUTHENTICATION_BACKENDS. A call without a request is the server's
    own code (the test client's or the demo's ``Client.login``), not a client guessing: it
    passes on to the next backend instead of failing as axes' backend would."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: the API's JSON error under /api/, a page for the login forms."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"error": {"code": "locked_out", "message": _message(), "retry_after_minutes": _minutes()}},
            status=429,
        )
    context = {
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "username": (credentials or {}).get("username", ""),
        "minutes": _minutes(),
    }
    return render(request, "registration/locked_out.html", context, status=429)


class LockedOut(exceptions.APIException):
    status_code = 429
    default_code = "locked_out"


class LockoutAwareBasicAuthentication(BasicAuthentication):
    """DRF's Basic auth, telling a locked-out caller so. Axes refuses the login either way;
    it marks the request it was given (DRF's, not Django's, so its middleware never sees the
    mark), and here that mark becomes a 429 instead of 'Invalid username/password'."""

    def authenticate_credentials(self, userid, password, request=None):
        try:
            return super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed:
            if request is not None and getattr(request, "axes_locked_out", False):
                raise LockedOut(_message()) from None
            raise


class ApiKeyNotAllowed(exceptions.PermissionDenied):
    default_code = "api_key_not_allowed"


class RefuseApiKeys(BaseAuthentication):
    """Last on staff endpoints: an app's API key there is named as the problem, instead of
    the request looking as if it carried no credentials at all."""

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer ") or request.headers.get("X-Api-Key"):
            raise ApiKeyNotAllowed(
                "an app's API key is not allowed here: staff endpoints take a staff user's "
                "session or HTTP Basic auth"
            )
        return None
