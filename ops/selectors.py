"""The dashboards' reads: every aggregation runs in SQL and returns a few rows per day,
bin, status or version, so a page costs a fixed number of queries whatever the row count.

Time-bucketed reads over outputs take ``since`` and lean on the covering index
``output_created_scores`` (created_at, including version and score columns): PostgreSQL
answers them with an index-only scan instead of reading the wide rows (prompt, raw text).
They must therefore name no other column: rows are counted with COUNT(*) and conditional
counts with a score column (never null), since COUNT(id) would send every row to the table.
The statistics object ``output_day_version`` tells the planner how many (day, version) groups
there are, so it hashes a few hundred groups instead of sorting every row.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Avg, Count, F, FloatField, Min, Q, QuerySet, Sum, Value
from django.db.models.functions import Floor, Least, TruncDay
from django.utils import timezone

from annotation.models import Annotation
from feedback.models import CapturePolicy, ReviewItem
from inference.models import ModelVersion, Output
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


def cognition_by_day(*, since: datetime, low_below: float) -> tuple[list[dict], dict[int | None, list[int]]]:
    """One pass over the window's outputs for the cognition page: per day and model version,
    outputs, mean score and parts, mean confidence (where the head gave one), outputs scoring
    below ``low_below``; and per version, outputs per score bin (width 1 / SCORE_BINS; a
    score of 1 falls in the top bin).

    SQL groups by (day, version, bin) and returns sums, at most days x versions x SCORE_BINS
    rows; the means and the histogram are summed up here, which costs one scan instead of two.
    """
    rows = (
        Output.objects.filter(created_at__gte=since)
        .annotate(
            day=TruncDay("created_at"),
            bin=Least(
                Floor(F("cognition_score") * SCORE_BINS), Value(SCORE_BINS - 1.0), output_field=FloatField()
            ),
        )
        .values("day", "model_version_id", "bin")
        .annotate(
            n=Count("*"),
            score=Sum("cognition_score"),
            consistency=Sum("consistency"),
            adaptability=Sum("adaptability"),
            confidence=Sum("head_confidence"),
            n_confidence=Count("head_confidence"),
            n_low=Count("cognition_score", filter=Q(cognition_score__lt=low_below)),
        )
    )
    days: dict[tuple, dict] = {}
    histogram: dict[int | None, list[int]] = defaultdict(lambda: [0] * SCORE_BINS)
    for r in rows:
        histogram[r["model_version_id"]][max(0, int(r["bin"]))] += r["n"]
        d = days.setdefault(
            (r["day"], r["model_version_id"]),
            {
                "day": r["day"],
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


def _count_by_day(queryset, *fields: str) -> list[dict]:
    """Rows per day (of ``created_at``) and ``fields``, oldest first: ``COUNT(*)``, so a covering
    index on ``created_at`` with those fields answers it alone."""
    return list(
        queryset.annotate(day=TruncDay("created_at"))
        .values("day", *fields)
        .annotate(n=Count("*"))
        .order_by("day", *fields)
    )


def outputs_by_day(*, since: datetime) -> dict:
    return {r["day"]: r["n"] for r in _count_by_day(Output.objects.filter(created_at__gte=since))}


def captures_by_day(*, since: datetime) -> list[dict]:
    """Review items created per day and capture reason."""
    return _count_by_day(ReviewItem.objects.filter(created_at__gte=since), "reason")


def queue_depth() -> list[dict]:
    """Review items by status and reason (all time: the queue has no window)."""
    return list(
        ReviewItem.objects.values("status", "reason").annotate(n=Count("id")).order_by("status", "reason")
    )


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
    return _count_by_day(Annotation.objects.filter(created_at__gte=since), "annotator__username")


def reviewer_totals(*, since: datetime) -> list[dict]:
    """Per reviewer in the window: annotations by status, error-free verdicts, and
    transparency verdicts (how often they judged the original reasoning understandable)."""
    return list(
        Annotation.objects.filter(created_at__gte=since)
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


def overview(*, now: datetime | None = None) -> dict:
    """The landing page's headline numbers."""
    now = now or timezone.now()
    day = Output.objects.filter(created_at__gte=now - timedelta(days=1)).aggregate(
        n=Count("*"), score=Avg("cognition_score")
    )
    week = Output.objects.filter(created_at__gte=now - timedelta(days=7)).aggregate(
        n=Count("*"), score=Avg("cognition_score")
    )
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
