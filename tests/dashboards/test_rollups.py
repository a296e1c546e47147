"""The daily roll-ups: the pages show the same numbers with them as from the raw rows, read
whole closed days from them, and follow changes made after a day was rolled up."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db.models import F
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from annotation.models import Annotation
from feedback.models import CapturePolicy
from inference.models import Output
from ops import selectors, services
from ops.models import DailyAnnotationStats, DailyOutputStats, DailyReviewStats, RollupDay
from tests.dashboards.seed import seed_loop

WINDOWS = (7, 30, 365)


def _window(days: int):
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=days - 1)


def _reads() -> dict:
    """Everything the windowed pages and the overview read, for each window."""
    threshold = selectors.capture_threshold()
    out: dict = {
        "queue_depth": selectors.queue_depth(),
        "capture_quality": selectors.capture_quality(threshold=threshold),
        "overview": {k: v for k, v in selectors.overview().items() if k in ("outputs_7d", "score_7d")},
    }
    for days in WINDOWS:
        since = _window(days)
        out[days] = {
            "cognition": selectors.cognition_by_day(since=since, low_below=threshold),
            "outputs": selectors.outputs_by_day(since=since),
            "captures": selectors.captures_by_day(since=since),
            "annotations": selectors.annotations_by_day_and_reviewer(since=since),
            "reviewers": selectors.reviewer_totals(since=since),
        }
    # A window whose first day is not whole (the overview's rolling week starts mid-day).
    out["rolling"] = selectors.cognition_by_day(
        since=timezone.now() - timedelta(days=9, hours=5), low_below=0.5
    )
    return out


def _same(a, b) -> None:
    """Counts equal, means equal up to the order floats were added in."""
    if isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-9)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    else:
        assert a == b


def _page(client, url: str) -> str:
    """The page without what differs between any two requests (CSP nonces, CSRF tokens, the
    charts' element ids, the time the page was drawn)."""
    html = client.get(url).content.decode()
    html = re.sub(r'updated <time datetime="[^"]*">[^<]*</time>', "", html)
    return re.sub(r'(nonce|value)="[^"]*"|\bc[0-9a-f]{10}\b', "", html)


@pytest.fixture
def seeded(db):
    return seed_loop(days=40)


def test_rolled_up_pages_show_the_raw_numbers(seeded):
    raw = _reads()
    done = services.rollups_refresh(max_days=1000)
    assert done["recomputed"] >= 35 and done["left"] == 0
    assert DailyOutputStats.objects.exists() and DailyReviewStats.objects.exists()
    assert DailyAnnotationStats.objects.exists()
    _same(_reads(), raw)


def test_the_pages_render_the_same_with_roll_ups(seeded, admin_client):
    urls = [reverse(f"dashboards:{p}") + "?days=365" for p in ("cognition", "capture", "queue", "reviewers")]
    urls.append(reverse("dashboards:overview"))
    before = [_page(admin_client, u) for u in urls]
    services.rollups_refresh(max_days=1000)
    assert [_page(admin_client, u) for u in urls] == before


def test_whole_closed_days_are_read_from_the_roll_ups(seeded):
    services.rollups_refresh(max_days=1000)
    since = _window(30)
    before = selectors.outputs_by_day(since=since)
    day = timezone.localdate() - timedelta(days=3)
    start = selectors.day_start(day)
    gone = Output.objects.filter(created_at__gte=start, created_at__lt=start + timedelta(days=1))
    assert gone.exists()
    # Move that day's rows to the day before: the raw counts of both days change, the pages' not.
    gone.update(created_at=F("created_at") - timedelta(days=1))
    # The roll-up still counts that day (raw rows are not read for it); today comes from the rows.
    assert selectors.outputs_by_day(since=since) == before


def test_a_day_without_a_roll_up_is_read_raw(seeded):
    raw = selectors.outputs_by_day(since=_window(30))
    services.rollups_refresh(max_days=1000)
    RollupDay.objects.filter(day=timezone.localdate() - timedelta(days=5)).delete()
    assert selectors.outputs_by_day(since=_window(30)) == raw


def test_recomputing_a_day_twice_leaves_the_same_rows(seeded):
    day = timezone.localdate() - timedelta(days=2)
    services.rollup_day_recompute(day=day)
    first = sorted(DailyOutputStats.objects.filter(day=day).values_list("model_version_id", "bin", "n"))
    services.rollup_day_recompute(day=day)
    assert (
        sorted(DailyOutputStats.objects.filter(day=day).values_list("model_version_id", "bin", "n")) == first
    )
    assert RollupDay.objects.filter(day=day).count() == 1


def test_a_second_review_of_an_old_annotation_shows_at_once_and_after_the_refresh(seeded, lead):
    services.rollups_refresh(max_days=1000)
    since = _window(30)
    old = (
        Annotation.objects.filter(
            status=Annotation.Status.SUBMITTED, created_at__lt=selectors.day_start(timezone.localdate())
        )
        .order_by("created_at")
        .first()
    )
    assert old is not None
    from annotation import services as annotation_services

    annotation_services.annotation_approve(annotation_id=old.pk, reviewer=lead)
    rolled = RollupDay.objects.get(day=timezone.localdate(old.created_at))
    totals = selectors.reviewer_totals(since=since)
    quality = selectors.capture_quality(threshold=selectors.capture_threshold())
    # The audit event marks the day changed: it is read raw until the refresh recomputes it.
    RollupDay.objects.all().delete()
    raw_totals = selectors.reviewer_totals(since=since)
    raw_quality = selectors.capture_quality(threshold=selectors.capture_threshold())
    _same(totals, raw_totals)
    _same(quality, raw_quality)
    assert rolled.computed_at < timezone.now()
    services.rollups_refresh(max_days=1000)
    _same(selectors.reviewer_totals(since=since), raw_totals)
    _same(selectors.queue_depth(), selectors.queue_depth())


def test_another_capture_threshold_is_read_raw_until_the_refresh(seeded):
    services.rollups_refresh(max_days=1000)
    CapturePolicy.objects.update_or_create(pk=1, defaults={"score_below": 0.45})
    since = _window(30)
    mixed = selectors.cognition_by_day(since=since, low_below=0.45)
    done = services.rollups_refresh(max_days=1000)
    assert done["recomputed"] >= 35
    assert set(RollupDay.objects.values_list("low_below", flat=True)) == {0.45}
    rolled = selectors.cognition_by_day(since=since, low_below=0.45)
    RollupDay.objects.all().delete()
    raw = selectors.cognition_by_day(since=since, low_below=0.45)
    _same(mixed, raw)
    _same(rolled, raw)


@override_settings(TIME_ZONE="America/New_York")
def test_days_are_local_days(seeded):
    raw = _reads()
    services.rollups_refresh(max_days=1000)
    assert RollupDay.objects.filter(day=timezone.localdate() - timedelta(days=1)).exists()
    _same(_reads(), raw)


def test_the_refresh_backfills_in_runs_newest_first(seeded):
    first = services.rollups_refresh(max_days=10)
    assert first == {"recomputed": 10, "left": pytest.approx(first["left"])} and first["left"] > 0
    newest = max(RollupDay.objects.values_list("day", flat=True))
    assert newest == timezone.localdate() - timedelta(days=1)
    while services.rollups_refresh(max_days=10)["left"]:
        pass
    assert not RollupDay.objects.filter(day__gte=timezone.localdate()).exists()


def test_query_counts_stay_bounded_with_roll_ups(seeded, admin_client, django_assert_max_num_queries):
    from tests.dashboards.test_pages import MAX_QUERIES, PAGES

    services.rollups_refresh(max_days=1000)
    for page in PAGES:
        with django_assert_max_num_queries(MAX_QUERIES):
            assert admin_client.get(reverse(f"dashboards:{page}"), {"days": 365}).status_code == 200
