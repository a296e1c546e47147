"""Staff-only dashboard pages. Anonymous visitors are sent to the login page; a signed-in
user who is not staff (a reviewer) gets 403: a login form would not help them."""

from __future__ import annotations

from datetime import timedelta
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils import timezone

from ops import panels

WINDOWS = (7, 30, 90, 365)
DEFAULT_WINDOW = 30

PAGES = [
    ("dashboards:overview", "Overview"),
    ("dashboards:cognition", "Cognition"),
    ("dashboards:capture", "Capture"),
    ("dashboards:queue", "Queue"),
    ("dashboards:reviewers", "Reviewers"),
    ("dashboards:datasets", "Datasets"),
    ("dashboards:training", "Training"),
    ("dashboards:models", "Models"),
]


def staff_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied("The dashboards are for staff.")
        return view(request, *args, **kwargs)

    return wrapper


def _window(request) -> int:
    try:
        days = int(request.GET.get("days", DEFAULT_WINDOW))
    except ValueError:
        return DEFAULT_WINDOW
    return days if days in WINDOWS else DEFAULT_WINDOW


def _render(request, template: str, page: str, context: dict, *, windowed: bool = False):
    return render(
        request,
        f"dashboards/{template}",
        {
            **context,
            "pages": PAGES,
            "current": page,
            "windows": WINDOWS if windowed else (),
            "days": context.get("days"),
        },
    )


def _since(days: int):
    """(now, the start of the window): midnight ``days - 1`` days ago, so the first day is whole."""
    now = timezone.now()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    return now, midnight - timedelta(days=days - 1)


@staff_required
def overview(request):
    return _render(request, "overview.html", "dashboards:overview", {"o": panels.overview()})


def _windowed(name: str, panel):
    """A staff page of ``panel(since=..., now=...)`` over the ``?days=`` window."""

    @staff_required
    def view(request):
        days = _window(request)
        now, since = _since(days)
        return _render(
            request,
            f"{name}.html",
            f"dashboards:{name}",
            {"days": days, **panel(since=since, now=now)},
            windowed=True,
        )

    view.__name__ = view.__qualname__ = name
    return view


cognition = _windowed("cognition", panels.cognition)
capture = _windowed("capture", panels.capture)
queue = _windowed("queue", panels.queue)
reviewers = _windowed("reviewers", panels.reviewers)


@staff_required
def datasets(request):
    return _render(request, "datasets.html", "dashboards:datasets", panels.datasets())


@staff_required
def training(request):
    return _render(request, "training.html", "dashboards:training", panels.training())


@staff_required
def models(request):
    return _render(request, "models.html", "dashboards:models", panels.models())
