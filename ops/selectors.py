"""The dashboards' reads: every aggregation runs in SQL and returns a few rows per day,
bin, status or version, so a page costs a fixed number of queries whatever the row count.

Time-bucketed reads over outputs take ``since`` and lean on the covering index
``output_created_scores`` (created_at, including version and score columns): PostgreSQL
answers them with an index-only scan instead of reading the wide rows (prompt, raw text).
They must therefore name no other column: rows are counted with COUNT(*) and conditional
counts with a score column (never null), since COUNT(id) would send every row to the table.
The statistics object ``output_day_version`` tells the planner how many (day, version) groups
there are, so it hashes a few hundred groups instead of sorting every row.

Whole closed days come from the daily roll-ups (``ops.models``) where a day has one: ``_plan``
splits a window into those days and the rest (today, a partial first day, a day not rolled up,
a day whose review rows changed since its roll-up), which is read from the raw tables. Both
halves are one UNION ALL query, so a page's query count does not depend on which half answers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from operator import itemgetter

from django.db import connection
from django.db.models import (
    Avg,
    BooleanField,
    Count,
    ExpressionWrapper,
    F,
    FloatField,
    Min,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Floor, Least, TruncDate
from django.utils import timezone

from annotation import selectors as annotation_selectors
from annotation.models import Annotation, AuditEvent
from feedback.models import CapturePolicy, ReviewItem
from inference.models import ModelVersion, Output
from ops.models import DailyAnnotationStats, DailyOutputStats, DailyReviewStats, RollupDay, RollupState
from retrain.models import DatasetVersion, Evaluation, TrainingRun, TrainingSample

SCORE_BINS = 20  # histogram bins of width 0.05 over [0, 1]

# Open review items by age: (label, lower bound).
AGE_BUCKETS = [
    ("< 1 h", timedelta(0)),
    ("1–6 h", timedelta(hours=1)),
    ("6–24 h", timedelta(hours=6)),
    ("1–3 d", timedelta(days=1)),
    ("3–7 d", timedelta(days=3)),
    ("> 7 d", timedelta(days=7)),
]

OPEN_STATUSES = [ReviewItem.Status.QUEUED, ReviewItem.Status.CLAIMED]


def capture_threshold() -> float:
    policy = CapturePolicy.objects.filter(pk=1).only("score_below").first()
    return policy.score_below if policy else CapturePolicy._meta.get_field("score_below").default


def version_labels() -> dict[int | None, dict]:
    """Every model version's name and status by id (None: outputs scored without a version)."""
    labels: dict[int | None, dict] = {None: {"name": "external", "status": ""}}
    for pk, name, status in ModelVersion.objects.values_list("pk", "name", "status"):
        labels[pk] = {"name": name, "status": status}
    return labels


def score_bin():
    """An output's score bin (width 1 / SCORE_BINS; a score of 1 falls in the top bin), the same
    expression for the raw reads and the roll-ups."""
    return Least(Floor(F("cognition_score") * SCORE_BINS), Value(SCORE_BINS - 1.0), output_field=FloatField())


def output_sums(low_below: float) -> dict:
    """What a roll-up row holds of its outputs, as aggregates over raw Output rows: the same
    expressions for the raw reads and for the recompute that fills the roll-ups."""
    return {
        "n": Count("*"),
        "score": Sum("cognition_score"),
        "consistency": Sum("consistency"),
        "adaptability": Sum("adaptability"),
        "confidence": Sum("head_confidence"),
        "n_confidence": Count("head_confidence"),
        "n_low": Count("cognition_score", filter=Q(cognition_score__lt=low_below)),
    }


def day_start(day: date, tz=None) -> datetime:
    """Local midnight opening ``day``: the value TruncDay gives the rows of that day."""
    return timezone.make_aware(datetime.combine(day, time.min), tz or timezone.get_current_timezone())


def _day_starts() -> dict:
    """date -> day_start(date), memoised for one read (looking up the current time zone is
    most of the cost of a call, and a year's rows name 365 days many times over)."""
    tz = timezone.get_current_timezone()

    class Starts(dict):
        def __missing__(self, day: date) -> datetime:
            self[day] = start = day_start(day, tz)
            return start

    return Starts()


def audited_days(*, after) -> set[date]:
    """Local days of the review items and annotations that audit events after ``after`` (a
    datetime or an expression) touched: every change to a review item's status or to an
    annotation after it was made leaves such an event (annotation.services.audit)."""
    return set(_audited(after=after).values_list("d", flat=True))


# What an audit event touches: its review item, its annotation, and every annotation of its
# item (a blind twin's status changes with the submit of its partner, audited on the item).
AUDITED_PATHS = ("review_item", "annotation", "review_item__annotations")


def _audited(*, after):
    events = AuditEvent.objects.filter(created_at__gt=after)
    parts = [
        events.filter(**{f"{path}__isnull": False})
        .annotate(d=TruncDate(f"{path}__created_at"), changed=Value(True))
        .values("d", "changed")
        for path in AUDITED_PATHS
    ]
    return parts[0].union(*parts[1:])


@dataclass
class _Plan:
    days: list[date]  # whole closed days read from the roll-ups
    rolled: Q  # the roll-ups' ``day`` filter for them, one range per run of consecutive days
    raw: Q  # created_at filter for everything else in the window
    # The same as separate ranges: a query per range, put together with UNION ALL, lets the
    # covering index answer each alone where an OR of ranges makes a bitmap scan that visits
    # the table (all time reads and windows starting mid-day have two ranges).
    gaps: list[Q]


def _plan(*, since: datetime | None, low_below: float | None = None, reviews: bool = False) -> _Plan:
    """Split the window from ``since`` (None: all time) into whole closed local days that have a
    roll-up and the raw rest. ``low_below``: only roll-ups counted at this capture threshold.
    ``reviews``: leave out days whose review items or annotations changed since the refresh
    (their status, second review), read raw until it recomputes them. One query."""
    today = timezone.localdate()
    first = None
    if since is not None:
        first = timezone.localdate(since)
        if day_start(first) < since:
            first += timedelta(days=1)
    rolled = RollupDay.objects.filter(day__lt=today)
    if first is not None:
        rolled = rolled.filter(day__gte=first)
    if low_below is not None:
        rolled = rolled.filter(low_below=low_below)
    rows = rolled.annotate(changed=Value(False)).values_list("day", "changed")
    if reviews:
        cursor = Subquery(RollupState.objects.filter(pk=1).values("audit_cursor")[:1])
        events = AuditEvent.objects.filter(created_at__gt=cursor)
        rows = rows.union(
            *(
                events.filter(**{f"{path}__isnull": False})
                .annotate(d=TruncDate(f"{path}__created_at"), changed=Value(True))
                .values_list("d", "changed")
                for path in AUDITED_PATHS
            ),
            all=True,
        )
    days: set[date] = set()
    changed: set[date] = set()
    for day, is_changed in rows:
        (changed if is_changed else days).add(day)
    ordered = sorted(days - changed)
    # The raw rest: the gaps between runs of consecutive rolled-up days, and after the last.
    gaps: list[tuple[datetime | None, datetime | None]] = []
    rolled_days = Q(pk__in=[])  # matches nothing (the query leaves it out)
    lower = since
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + timedelta(days=1):
            j += 1
        rolled_days |= Q(day__gte=ordered[i], day__lte=ordered[j])
        run_start, run_end = day_start(ordered[i]), day_start(ordered[j] + timedelta(days=1))
        if lower is None or run_start > lower:
            gaps.append((lower, run_start))
        lower = run_end
        i = j + 1
    gaps.append((lower, None))
    raw: Q | None = None
    ranges = []
    for lo, hi in gaps:
        bounds = Q()  # all time when both ends are open
        if lo is not None:
            bounds &= Q(created_at__gte=lo)
        if hi is not None:
            bounds &= Q(created_at__lt=hi)
        ranges.append(bounds)
        raw = bounds if raw is None else raw | bounds
    return _Plan(days=ordered, rolled=rolled_days, raw=raw or Q(), gaps=ranges)


def _dated(rows, *fields: str) -> list[dict]:
    """Rows from a roll-up and a raw half, ordered by ``day`` and ``fields``, with ``day`` (a date
    in both halves) as the aware local midnight that TruncDay gives. The halves cover different
    days, so no key is in both."""
    out = sorted(rows, key=itemgetter("day", *fields))
    starts = _day_starts()
    for r in out:
        r["day"] = starts[r["day"]]
    return out


def _cognition_rows(*, since: datetime, low_below: float) -> tuple[list[dict], list[dict]]:
    """(per day and version sums, per version and bin counts): the roll-ups' whole days and the
    raw rest grouped by (day, version, bin), in one query."""
    plan = _plan(since=since, low_below=low_below)
    raw = (
        Output.objects.filter(plan.raw)
        .annotate(day=TruncDate("created_at"), bin=score_bin())
        .values("day", "model_version_id", "bin")
        .annotate(**output_sums(low_below))
    )
    if not plan.days:
        rows = list(raw)
        return rows, rows
    # A day's roll-up in two shapes (bin -1 marks the daily sums; day None the histogram), so
    # the raw half and both roll-up halves go in one UNION ALL.
    stats = DailyOutputStats.objects.filter(plan.rolled)
    sums = (
        stats.annotate(b=Value(-1.0, output_field=FloatField()))
        .values("day", "model_version_id", "b")
        .annotate(
            n=Sum("n"),
            score=Sum("score"),
            consistency=Sum("consistency"),
            adaptability=Sum("adaptability"),
            confidence=Sum("confidence"),
            n_confidence=Sum("n_confidence"),
            n_low=Sum("n_low"),
        )
    )
    hist = (
        stats.annotate(d=Value(None, output_field=DailyOutputStats._meta.get_field("day")), b=F("bin"))
        .values("d", "model_version_id", "b")
        .annotate(
            n=Sum("n"),
            score=Value(0.0),
            consistency=Value(0.0),
            adaptability=Value(0.0),
            confidence=Value(0.0),
            n_confidence=Value(0),
            n_low=Value(0),
        )
    )
    daily, bins = [], []
    for r in raw.union(sums, hist, all=True):
        if r["day"] is None:
            bins.append(r)
        elif r["bin"] == -1:
            daily.append(r)
        else:
            daily.append(r)
            bins.append(r)
    return daily, bins


def cognition_by_day(*, since: datetime, low_below: float) -> tuple[list[dict], dict[int | None, list[int]]]:
    """One pass over the window's outputs for the cognition page: per day and model version,
    outputs, mean score and parts, mean confidence (where the head gave one), outputs scoring
    below ``low_below``; and per version, outputs per score bin (width 1 / SCORE_BINS; a
    score of 1 falls in the top bin).

    SQL groups by (day, version, bin) and returns sums, at most days x versions x SCORE_BINS
    rows for the raw days and days x versions plus versions x SCORE_BINS for the rolled-up ones;
    the means and the histogram are summed up here.
    """
    daily_rows, bin_rows = _cognition_rows(since=since, low_below=low_below)
    starts = _day_starts()
    days: dict[tuple, dict] = {}
    histogram: dict[int | None, list[int]] = defaultdict(lambda: [0] * SCORE_BINS)
    for r in bin_rows:
        histogram[r["model_version_id"]][max(0, int(r["bin"]))] += r["n"]
    for r in daily_rows:
        d = days.setdefault(
            (r["day"], r["model_version_id"]),
            {
                "day": starts[r["day"]],
                "model_version_id": r["model_version_id"],
                "n": 0,
                "score": 0.0,
                "consistency": 0.0,
                "adaptability": 0.0,
                "confidence": 0.0,
                "n_confidence": 0,
                "n_low": 0,
            },
        )
        for part in ("n", "score", "consistency", "adaptability", "confidence", "n_confidence", "n_low"):
            d[part] += r[part] or 0
    daily = []
    for key in sorted(days, key=lambda k: (k[0], k[1] is None, k[1] or 0)):
        d = days[key]
        for part in ("score", "consistency", "adaptability"):
            d[part] /= d["n"]
        d["confidence"] = d["confidence"] / d["n_confidence"] if d["n_confidence"] else None
        daily.append(d)
    return daily, dict(histogram)


def outputs_by_day(*, since: datetime) -> dict:
    plan = _plan(since=since)
    raw = (
        Output.objects.filter(plan.raw)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("*"))
    )
    rolled = DailyOutputStats.objects.filter(plan.rolled).values("day").annotate(n=Sum("n"))
    return {r["day"]: r["n"] for r in _dated(raw.union(rolled, all=True))}


def captures_by_day(*, since: datetime) -> list[dict]:
    """Review items created per day and capture reason (a reason never changes: no day is
    left out for review changes)."""
    plan = _plan(since=since)
    raw = (
        ReviewItem.objects.filter(plan.raw)
        .annotate(day=TruncDate("created_at"))
        .values("day", "reason")
        .annotate(n=Count("*"))
    )
    rolled = DailyReviewStats.objects.filter(plan.rolled).values("day", "reason").annotate(n=Sum("n"))
    return _dated(raw.union(rolled, all=True), "reason")


def queue_depth() -> list[dict]:
    """Review items by status and reason (all time: the queue has no window)."""
    plan = _plan(since=None, reviews=True)
    raw = ReviewItem.objects.filter(plan.raw).values("status", "reason").annotate(n=Count("*"))
    rolled = DailyReviewStats.objects.filter(plan.rolled).values("status", "reason").annotate(n=Sum("n"))
    counts: dict[tuple, int] = defaultdict(int)
    for r in raw.union(rolled, all=True):
        counts[(r["status"], r["reason"])] += r["n"]
    return [{"status": s, "reason": r, "n": n} for (s, r), n in sorted(counts.items())]


def queue_age(*, now: datetime | None = None) -> dict:
    """Open items per age bucket, the oldest one's creation time and expired claims, in one query."""
    now = now or timezone.now()
    bounds = [now - lower for _, lower in AGE_BUCKETS] + [None]
    buckets = {}
    for i in range(len(AGE_BUCKETS)):
        newer_than = Q(created_at__gt=bounds[i + 1]) if bounds[i + 1] else Q()
        buckets[f"age_{i}"] = Count("id", filter=Q(created_at__lte=bounds[i]) & newer_than)
    row = ReviewItem.objects.filter(status__in=OPEN_STATUSES).aggregate(
        open=Count("id"),
        oldest=Min("created_at"),
        expired_claims=Count("id", filter=Q(status=ReviewItem.Status.CLAIMED, lease_expires_at__lt=now)),
        **buckets,
    )
    return {
        "open": row["open"],
        "oldest": row["oldest"],
        "expired_claims": row["expired_claims"],
        "buckets": [(label, row[f"age_{i}"]) for i, (label, _) in enumerate(AGE_BUCKETS)],
    }


def annotations_by_day_and_reviewer(*, since: datetime) -> list[dict]:
    plan = _plan(since=since)
    raw = (
        Annotation.objects.filter(plan.raw)
        .annotate(day=TruncDate("created_at"))
        .values("day", "annotator__username")
        .annotate(n=Count("*"))
    )
    rolled = (
        DailyAnnotationStats.objects.filter(plan.rolled)
        .values("day", "annotator__username")
        .annotate(n=Sum("n"))
    )
    return _dated(raw.union(rolled, all=True), "annotator__username")


def reviewer_totals(*, since: datetime) -> list[dict]:
    """Per reviewer in the window: annotations by status, error-free verdicts, and
    transparency verdicts (how often they judged the original reasoning understandable)."""
    plan = _plan(since=since, reviews=True)
    raw = (
        Annotation.objects.filter(plan.raw)
        .annotate(second=ExpressionWrapper(Q(second_reviewer__isnull=False), output_field=BooleanField()))
        .values("annotator__username", "status", "transparent", "second")
        .annotate(n=Count("*"))
    )
    rolled = (
        DailyAnnotationStats.objects.filter(plan.rolled)
        .values("annotator__username", "status", "transparent", "second_reviewed")
        .annotate(n=Sum("n"))
    )
    totals: dict[str, dict] = {}
    for r in raw.union(rolled, all=True):
        t = totals.setdefault(
            r["annotator__username"],
            {
                "annotator__username": r["annotator__username"],
                "n": 0,
                "approved": 0,
                "rejected": 0,
                "submitted": 0,
                "transparent": 0,
                "second_reviews": 0,
            },
        )
        t["n"] += r["n"]
        if r["status"] in ("approved", "rejected", "submitted"):
            t[r["status"]] += r["n"]
        t["transparent"] += r["n"] if r["transparent"] else 0
        t["second_reviews"] += r["n"] if r["second"] else 0
    return sorted(totals.values(), key=lambda t: (-t["n"], t["annotator__username"]))


def capture_quality(*, threshold: float) -> dict:
    """annotation.selectors.capture_quality over all time, its counts from the roll-ups where
    days have one: approved verdicts by capture reason and error, outputs below the threshold."""
    plan = _plan(since=None, low_below=threshold, reviews=True)
    wrong = ExpressionWrapper(~Q(error_type=Annotation.ErrorType.NONE), output_field=BooleanField())
    verdicts = (
        Annotation.objects.filter(plan.raw, status=Annotation.Status.APPROVED)
        .annotate(kind=Value("verdict"), reason=F("review_item__reason"), wrong=wrong)
        .values("kind", "reason", "wrong")
        .annotate(n=Count("*"))
    )
    rolled_verdicts = (
        DailyAnnotationStats.objects.filter(plan.rolled, status=Annotation.Status.APPROVED)
        .annotate(kind=Value("verdict"), reason=F("item_reason"), w=F("wrong"))
        .values("kind", "reason", "w")
        .annotate(n=Sum("n"))
    )
    # Outputs below the threshold and the rest, under the verdicts' column names (``wrong``
    # holds "below the threshold").
    below = ExpressionWrapper(Q(cognition_score__lt=threshold), output_field=BooleanField())
    outputs = [
        Output.objects.filter(gap)
        .annotate(kind=Value("outputs"), reason=Value(""), low=below)
        .values("kind", "reason", "low")
        .annotate(n=Count("*"))
        for gap in plan.gaps
    ]
    stats = DailyOutputStats.objects.filter(plan.rolled).annotate(kind=Value("outputs"), reason=Value(""))
    rolled_low = stats.annotate(low=Value(True)).values("kind", "reason", "low").annotate(n=Sum("n_low"))
    rolled_rest = (
        stats.annotate(low=Value(False)).values("kind", "reason", "low").annotate(n=Sum(F("n") - F("n_low")))
    )
    counts = {"low_n": 0, "low_wrong": 0, "audit_n": 0, "audit_wrong": 0, "captured": 0, "let_through": 0}
    for r in verdicts.union(rolled_verdicts, *outputs, rolled_low, rolled_rest, all=True):
        n = r["n"] or 0
        if r["kind"] == "outputs":
            counts["captured" if r["wrong"] else "let_through"] += n
        elif r["reason"] in (ReviewItem.Reason.LOW_SCORE, ReviewItem.Reason.AUDIT_SAMPLE):
            prefix = "low" if r["reason"] == ReviewItem.Reason.LOW_SCORE else "audit"
            counts[f"{prefix}_n"] += n
            counts[f"{prefix}_wrong"] += n if r["wrong"] else 0
    return annotation_selectors.capture_quality_from_counts(threshold=threshold, **counts)


def dataset_versions(*, limit: int = 24) -> list[DatasetVersion]:
    """The newest ``limit`` monthly versions, oldest first."""
    newest = DatasetVersion.objects.order_by("-period").only(
        "period", "counts", "growth", "sha256", "composition", "created_at"
    )
    return list(reversed(newest[:limit]))


def dataset_error_types(*, version_ids: list[int]) -> list[dict]:
    """Reflection samples (one per corrected answer) per dataset version and the error type
    the reviewer named."""
    through = DatasetVersion.samples.through
    return list(
        through.objects.filter(
            datasetversion_id__in=version_ids, trainingsample__kind=TrainingSample.Kind.REFLECTION
        )
        .values("datasetversion_id", error_type=F("trainingsample__source_annotation__error_type"))
        .annotate(n=Count("id"))
        .order_by("datasetversion_id", "error_type")
    )


def dataset_step_strategies(*, version_ids: list[int]) -> list[dict]:
    """Corrected steps per dataset version and strategy, counted inside the strategy samples'
    JSON (``payload.steps[].strategy``). The ORM has no way to expand a JSON array, so this
    is the one raw query, in each backend's own JSON function."""
    if not version_ids:
        return []
    through = DatasetVersion.samples.through._meta.db_table
    samples = TrainingSample._meta.db_table
    if connection.vendor == "postgresql":
        expand = "jsonb_array_elements(s.payload -> 'steps') AS e"
        strategy = "e ->> 'strategy'"
    else:
        expand = "json_each(s.payload, '$.steps') AS e"
        strategy = "json_extract(e.value, '$.strategy')"
    placeholders = ", ".join(["%s"] * len(version_ids))
    sql = (
        f"SELECT d.datasetversion_id, COALESCE({strategy}, 'other') AS strategy, COUNT(*) "
        f"FROM {through} d JOIN {samples} s ON s.id = d.trainingsample_id, {expand} "
        f"WHERE s.kind = %s AND d.datasetversion_id IN ({placeholders}) GROUP BY 1, 2 ORDER BY 1, 2"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [TrainingSample.Kind.STRATEGY, *version_ids])
        return [{"datasetversion_id": v, "strategy": s, "n": n} for v, s, n in cursor.fetchall()]


def training_runs(*, limit: int = 12) -> list[TrainingRun]:
    """The newest runs, newest first, with the rows their page names."""
    return list(
        TrainingRun.objects.select_related("dataset", "base_version", "result_version")
        .defer("dataset__files", "base_version__manifest", "result_version__manifest")
        .order_by("-created_at")[:limit]
    )


def model_versions(*, limit: int = 12) -> list[ModelVersion]:
    """The newest versions, oldest first (the order they were made in)."""
    newest = ModelVersion.objects.defer("manifest").order_by("-created_at", "-pk")[:limit]
    return list(reversed(newest))


def latest_evaluations(*, version_ids: list[int]) -> dict[int, Evaluation]:
    """Each version's newest evaluation (a version serving during several runs has several)."""
    latest: dict[int, Evaluation] = {}
    for ev in Evaluation.objects.filter(model_version_id__in=version_ids).order_by("created_at", "pk"):
        latest[ev.model_version_id] = ev
    return latest


def gate_decisions(*, version_ids: list[int]) -> dict[int, TrainingRun]:
    """The run that produced each version (its gate decision), by version id."""
    runs = TrainingRun.objects.filter(result_version_id__in=version_ids).only(
        "period", "decision", "stage", "result_version_id", "recipe"
    )
    return {run.result_version_id: run for run in runs if run.result_version_id is not None}


def _outputs_since(*, since: datetime) -> dict:
    """Outputs from ``since`` on and their mean score, whole days from the roll-ups."""
    plan = _plan(since=since)
    raw = [
        Output.objects.filter(gap)
        .annotate(k=Value(1))
        .values("k")
        .annotate(n=Count("*"), score=Sum("cognition_score"))
        for gap in plan.gaps
    ]
    rolled = (
        DailyOutputStats.objects.filter(plan.rolled)
        .annotate(k=Value(1))
        .values("k")
        .annotate(n=Sum("n"), score=Sum("score"))
    )
    n, score = 0, 0.0
    for r in raw[0].union(*raw[1:], rolled, all=True):
        n += r["n"] or 0
        score += r["score"] or 0.0
    return {"n": n, "score": score / n if n else None}


def overview(*, now: datetime | None = None) -> dict:
    """The landing page's headline numbers."""
    now = now or timezone.now()
    day = Output.objects.filter(created_at__gte=now - timedelta(days=1)).aggregate(
        n=Count("*"), score=Avg("cognition_score")
    )
    week = _outputs_since(since=now - timedelta(days=7))
    return {
        "outputs_24h": day["n"],
        "score_24h": day["score"],
        "outputs_7d": week["n"],
        "score_7d": week["score"],
        "captured_7d": ReviewItem.objects.filter(created_at__gte=now - timedelta(days=7)).count(),
        "annotations_7d": Annotation.objects.filter(created_at__gte=now - timedelta(days=7)).count(),
        "active": ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE)
        .only("name", "promoted_at")
        .first(),
        "last_run": TrainingRun.objects.only("period", "stage", "created_at").order_by("-created_at").first(),
        "last_dataset": DatasetVersion.objects.only("period", "counts", "growth").order_by("-period").first(),
    }


def score_histogram(*, since: datetime, until: datetime) -> dict[int | None, list[int]]:
    """Per model version, outputs per score bin (as ``cognition_by_day``'s histogram) created
    in [since, until): a range that ends before today, whose daily rows the page filters."""
    rows = (
        Output.objects.filter(created_at__gte=since, created_at__lt=until)
        .annotate(
            bin=Least(
                Floor(F("cognition_score") * SCORE_BINS), Value(SCORE_BINS - 1.0), output_field=FloatField()
            )
        )
        .values("model_version_id", "bin")
        .annotate(n=Count("*"))
    )
    histogram: dict[int | None, list[int]] = defaultdict(lambda: [0] * SCORE_BINS)
    for r in rows:
        histogram[r["model_version_id"]][max(0, int(r["bin"]))] += r["n"]
    return dict(histogram)


def reviewer_totals_between(*, since: datetime, until: datetime) -> list[dict]:
    """``reviewer_totals`` over [since, until): a range that ends before today."""
    return list(
        Annotation.objects.filter(created_at__gte=since, created_at__lt=until)
        .values("annotator__username")
        .annotate(
            n=Count("id"),
            approved=Count("id", filter=Q(status=Annotation.Status.APPROVED)),
            rejected=Count("id", filter=Q(status=Annotation.Status.REJECTED)),
            submitted=Count("id", filter=Q(status=Annotation.Status.SUBMITTED)),
            transparent=Count("id", filter=Q(transparent=True)),
            second_reviews=Count("id", filter=Q(second_reviewer__isnull=False)),
        )
        .order_by("-n", "annotator__username")
    )


def outputs_filtered(
    *,
    since: datetime,
    until: datetime | None = None,
    version_id: int | None = None,
    external: bool = False,
    captured: bool | None = None,
    reason: str | None = None,
    score_min: float | None = None,
    score_max: float | None = None,
) -> QuerySet[Output]:
    """Outputs created in [since, until) (until None: up to now), newest first, with what their
    list shows (version, review item). ``external``: only those scored without a version;
    ``captured``: sent for review or not; ``reason``: captured for that reason; the score band
    is [score_min, score_max), and a band ending at 1 includes 1 (the histogram's top bin)."""
    rows = Output.objects.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    if external:
        rows = rows.filter(model_version__isnull=True)
    elif version_id is not None:
        rows = rows.filter(model_version_id=version_id)
    if captured is not None:
        rows = rows.filter(review_item__isnull=not captured)
    if reason:
        rows = rows.filter(review_item__reason=reason)
    if score_min is not None:
        rows = rows.filter(cognition_score__gte=score_min)
    if score_max is not None:
        rows = (
            rows.filter(cognition_score__lte=1.0)
            if score_max >= 1
            else rows.filter(cognition_score__lt=score_max)
        )
    return (
        rows.select_related("model_version", "review_item")
        .only(
            "uuid",
            "prompt",
            "answer",
            "cognition_score",
            "consistency",
            "adaptability",
            "created_at",
            "model_version__name",
            "review_item__reason",
            "review_item__status",
        )
        .order_by("-created_at", "-pk")
    )
