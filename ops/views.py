"""Staff-only dashboard pages. Anonymous visitors are sent to the login page; a signed-in
user who is not staff (a reviewer) gets 403: a login form would not help them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils import timezone

from ops import forms, panels, selectors

WINDOWS = (7, 30, 90, 365)
DEFAULT_WINDOW = 30
OUTPUTS_PER_PAGE = 50
REFRESH_SECONDS = 60  # the opt-in auto-refresh's period (dashboards.js reads it from the page)

PAGES = [
    ("dashboards:overview", "Overview"),
    ("dashboards:cognition", "Cognition"),
    ("dashboards:capture", "Capture"),
    ("dashboards:queue", "Queue"),
    ("dashboards:reviewers", "Reviewers"),
    ("dashboards:datasets", "Datasets"),
    ("dashboards:training", "Training"),
    ("dashboards:models", "Models"),
    ("dashboards:outputs", "Outputs"),
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


@dataclass(frozen=True)
class Window:
    """What a windowed page shows: from ``since`` (local midnight of ``start``) to ``until``
    (local midnight after ``end``; None when the window runs to now)."""

    since: datetime
    until: datetime | None
    start: date
    end: date
    days: int | None  # the preset chosen; None for a custom range
    label: str


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def preset_window(days: int) -> Window:
    """The last ``days`` days: from midnight ``days - 1`` days ago, so the first day is whole."""
    today = timezone.localdate()
    start = today - timedelta(days=days - 1)
    return Window(_midnight(start), None, start, today, days, f"last {days} days")


def range_window(start: date, end: date) -> Window:
    until = None if end >= timezone.localdate() else _midnight(end + timedelta(days=1))
    return Window(_midnight(start), until, start, end, None, f"{start:%Y-%m-%d} to {end:%Y-%m-%d}")


def _window(request) -> tuple[Window, list[str], dict]:
    """The window a page shows, the problems with what was asked for (the page says them and
    shows the default window), and the range to put back in the form."""
    query = request.GET
    entered = {"from": query.get("from", ""), "to": query.get("to", "")}
    if "from" in query or "to" in query:
        form = forms.DateRangeForm(forms.date_range_data(query), today=timezone.localdate())
        if form.is_valid():
            return range_window(form.cleaned_data["date_from"], form.cleaned_data["date_to"]), [], entered
        return preset_window(DEFAULT_WINDOW), form.problems(), entered
    try:
        days = int(query.get("days", DEFAULT_WINDOW))
    except ValueError:
        days = 0
    if days not in WINDOWS:
        problem = f"{query.get('days')!r} is not a window: choose one of {', '.join(map(str, WINDOWS))} days"
        return preset_window(DEFAULT_WINDOW), [problem], entered
    return preset_window(days), [], entered


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
            "refresh_seconds": REFRESH_SECONDS,
            "rendered_at": timezone.now(),
        },
    )


@staff_required
def overview(request):
    return _render(request, "overview.html", "dashboards:overview", {"o": panels.overview()})


def _windowed(name: str, panel):
    """A staff page of ``panel(since=..., now=..., until=...)`` over the ``?days=`` window or
    the ``?from=&to=`` range."""

    @staff_required
    def view(request):
        window, problems, entered = _window(request)
        return _render(
            request,
            f"{name}.html",
            f"dashboards:{name}",
            {
                "days": window.days,
                "window": window,
                "range_problems": problems,
                "entered": entered,
                **panel(since=window.since, now=timezone.now(), until=window.until),
            },
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


@staff_required
def outputs(request):
    """The outputs behind a chart's mark or a table's row (the charts link here filtered by
    day, model version, review and score band), newest first, a page at a time. Filters that
    are not valid show what is wrong and no rows, never a list the filters did not ask for."""
    form = forms.OutputFilterForm(forms.output_filter_data(request.GET), today=timezone.localdate())
    valid = form.is_valid()
    f = form.cleaned_data if valid else {}
    window = (
        range_window(f["date_from"], f["date_to"]) if f.get("date_from") else preset_window(DEFAULT_WINDOW)
    )
    version = f.get("version") or ""
    rows = selectors.outputs_filtered(
        since=window.since,
        until=window.until,
        version_id=int(version) if version.isdigit() else None,
        external=version == "external",
        captured={"yes": True, "no": False}.get(f.get("captured") or ""),
        reason=f.get("reason") or None,
        score_min=f.get("score_min"),
        score_max=f.get("score_max"),
    )
    page = Paginator(rows if valid else rows.none(), OUTPUTS_PER_PAGE).get_page(request.GET.get("page"))
    return _render(
        request,
        "outputs.html",
        "dashboards:outputs",
        {
            "form": form,
            "problems": [] if valid else form.problems(),
            "window": window,
            "page": page,
            "versions": selectors.version_labels(),
        },
    )
