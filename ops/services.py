"""The dashboards' daily roll-ups: recompute a local day from the raw tables, and the periodic
refresh that decides which days to recompute.

A day's roll-up is replaced whole (DELETE + INSERT in one transaction, under a lock on its
``RollupDay`` row), so recomputing a day twice, or two refreshes at once, leave the same rows.

Which days the refresh recomputes, newest first, at most ``ROLLUP_MAX_DAYS_PER_RUN`` a run:

1. days named by audit events since the last run (a review item claimed, released or
   annotated, an annotation approved, rejected, superseded or withdrawn: the only changes to a
   row after the day it was made);
2. the last ``ROLLUP_REFRESH_DAYS`` closed days, always (rows committed just after midnight
   with the previous day's time);
3. closed days with no roll-up yet (the first run backfills from the oldest output, review
   item or annotation), or one counted at another capture threshold than the policy's now.

Until a day is recomputed the pages read it raw (``ops.selectors._plan``), so a roll-up that is
late costs time, never a wrong number.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import BooleanField, Count, ExpressionWrapper, F, Min, Q
from django.utils import timezone

from annotation.models import Annotation
from feedback.models import ReviewItem
from inference.models import Output
from ops.models import DailyAnnotationStats, DailyOutputStats, DailyReviewStats, RollupDay, RollupState
from ops.selectors import audited_days, capture_threshold, day_start, output_sums, score_bin

# Audit events are stamped when written and committed a moment later: the next run looks this
# far behind the cursor again, so an event committed late is not missed.
AUDIT_OVERLAP = timedelta(minutes=5)


@transaction.atomic
def rollup_day_recompute(*, day: date, low_below: float | None = None) -> RollupDay:
    """Replace ``day``'s roll-ups (local day of the dashboards' time zone) with counts from the
    raw tables; ``low_below``: the capture threshold to count low scores below (the policy's)."""
    low_below = capture_threshold() if low_below is None else low_below
    marker, _ = RollupDay.objects.get_or_create(
        day=day, defaults={"computed_at": timezone.now(), "low_below": low_below}
    )
    marker = RollupDay.objects.select_for_update().get(pk=marker.pk)
    start, end = day_start(day), day_start(day + timedelta(days=1))
    in_day = Q(created_at__gte=start, created_at__lt=end)
    for model in (DailyOutputStats, DailyReviewStats, DailyAnnotationStats):
        model.objects.filter(day=day).delete()

    outputs = (
        Output.objects.filter(in_day)
        .annotate(bin=score_bin())
        .values("app_id", "model_version_id", "bin")
        .annotate(**output_sums(low_below))
    )
    DailyOutputStats.objects.bulk_create(
        DailyOutputStats(
            day=day,
            app_id=r["app_id"],
            model_version_id=r["model_version_id"],
            bin=max(0, int(r["bin"])),
            n=r["n"],
            score=r["score"],
            consistency=r["consistency"],
            adaptability=r["adaptability"],
            confidence=r["confidence"] or 0.0,
            n_confidence=r["n_confidence"],
            n_low=r["n_low"],
        )
        for r in outputs
    )
    items = ReviewItem.objects.filter(in_day).values("reason", "status").annotate(n=Count("*"))
    DailyReviewStats.objects.bulk_create(DailyReviewStats(day=day, **r) for r in items)
    annotations = (
        Annotation.objects.filter(in_day)
        .annotate(
            second_reviewed=ExpressionWrapper(Q(second_reviewer__isnull=False), output_field=BooleanField()),
            item_reason=F("review_item__reason"),
            wrong=ExpressionWrapper(~Q(error_type=Annotation.ErrorType.NONE), output_field=BooleanField()),
        )
        .values("annotator_id", "status", "transparent", "second_reviewed", "item_reason", "wrong")
        .annotate(n=Count("*"))
    )
    DailyAnnotationStats.objects.bulk_create(DailyAnnotationStats(day=day, **r) for r in annotations)
    marker.computed_at = timezone.now()
    marker.low_below = low_below
    marker.save(update_fields=["computed_at", "low_below"])
    return marker


def _first_day() -> date | None:
    """The oldest local day with an output, review item or annotation (three index lookups)."""
    firsts = [m.objects.aggregate(first=Min("created_at"))["first"] for m in (Output, ReviewItem, Annotation)]
    known = [f for f in firsts if f is not None]
    return timezone.localdate(min(known)) if known else None


def rollups_refresh(*, max_days: int | None = None) -> dict:
    """Recompute the days that need it (see the module docstring); returns what it did."""
    started = timezone.now()
    max_days = settings.COGLOOP["ROLLUP_MAX_DAYS_PER_RUN"] if max_days is None else max_days
    today = timezone.localdate(started)
    threshold = capture_threshold()
    state, _ = RollupState.objects.get_or_create(pk=1)
    changed = set()
    if state.audit_cursor is not None:
        changed = {d for d in audited_days(after=state.audit_cursor) if d is not None and d < today}
    recent = {today - timedelta(days=i) for i in range(1, settings.COGLOOP["ROLLUP_REFRESH_DAYS"] + 1)}
    have = dict(RollupDay.objects.values_list("day", "low_below"))
    first = _first_day()
    missing = set()
    if first is not None:
        missing = {
            first + timedelta(days=i)
            for i in range((today - first).days)
            if have.get(first + timedelta(days=i)) != threshold
        }
    urgent = sorted(changed | recent, reverse=True)
    backlog = sorted(missing - set(urgent), reverse=True)
    todo = (urgent + backlog)[:max_days]
    for day in todo:
        rollup_day_recompute(day=day, low_below=threshold)
    if set(urgent) <= set(todo):
        # Every change seen so far is in the roll-ups: later runs and pages look after this.
        state.audit_cursor = started - AUDIT_OVERLAP
        state.save(update_fields=["audit_cursor"])
    return {"recomputed": len(todo), "left": len(urgent) + len(backlog) - len(todo)}
