"""Reads for the review pages: the queue with its filters, counts, progress, agreement, audit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import BooleanField, Case, Count, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from annotation.agreement import cohen_kappa, interval_overlap
from annotation.models import Annotation, AuditEvent
from feedback.models import ReviewItem
from feedback.selectors import review_item_open_q
from feedback.services import capture_policy_get
from inference.models import Output

# The checker's findings on an output (what "error type" filters in the queue, before any
# human label exists): keys of Output.score_parts.
CHECKER_ERRORS = {
    "wrong_claim": ("Wrong claim in a step", Q(output__score_parts__wrong_claims__gt=0)),
    "answer_mismatch": (
        "Answer disagrees with the reasoning",
        Q(output__score_parts__answer_agreement__lt=1),
    ),
    "contradiction": ("Steps contradict each other", Q(output__score_parts__contradiction_free__lt=1)),
    "none": (
        "No checker finding",
        Q(
            output__score_parts__wrong_claims=0,
            output__score_parts__answer_agreement__gte=1,
            output__score_parts__contradiction_free__gte=1,
        ),
    ),
}
QUEUE_LIMIT = 100


def start_of_today() -> datetime:
    return timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)


def queue_items(*, filters: dict, user) -> QuerySet[ReviewItem]:
    """Open and claimed items, best first, narrowed by the queue page's filters (already cleaned).

    ``annotated_by_me`` marks items this user annotated (a blind twin they may not take).
    """
    now = timezone.now()
    items = ReviewItem.objects.filter(status__in=[ReviewItem.Status.QUEUED, ReviewItem.Status.CLAIMED])
    if filters.get("reason"):
        items = items.filter(reason=filters["reason"])
    if filters.get("score_min") is not None:
        items = items.filter(output__cognition_score__gte=filters["score_min"])
    if filters.get("score_max") is not None:
        items = items.filter(output__cognition_score__lte=filters["score_max"])
    if filters.get("model_version"):
        items = items.filter(output__model_version__name=filters["model_version"])
    if filters.get("checker_error"):
        items = items.filter(CHECKER_ERRORS[filters["checker_error"]][1])
    if filters.get("state") == "open":
        items = items.filter(review_item_open_q(now))
    elif filters.get("state") == "mine":
        items = items.filter(status=ReviewItem.Status.CLAIMED, claimed_by=user, lease_expires_at__gte=now)
    return (
        items.select_related("output__model_version", "claimed_by")
        .annotate(
            annotated_by_me=Count("annotations", filter=Q(annotations__annotator=user)),
            lease_live=Case(
                When(status=ReviewItem.Status.CLAIMED, lease_expires_at__gte=now, then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            ),
        )
        .order_by("priority", "created_at")
    )


def items_held_by(*, user) -> list[ReviewItem]:
    """The items this reviewer holds a live lease on, best first: work to resume or give back."""
    return list(
        ReviewItem.objects.filter(
            status=ReviewItem.Status.CLAIMED, claimed_by=user, lease_expires_at__gte=timezone.now()
        )
        .select_related("output__model_version")
        .order_by("priority", "created_at")
    )


def queue_counts() -> dict:
    now = timezone.now()
    items = ReviewItem.objects.aggregate(
        open=Count("pk", filter=review_item_open_q(now)),
        claimed=Count("pk", filter=Q(status=ReviewItem.Status.CLAIMED, lease_expires_at__gte=now)),
        blind_waiting=Count("pk", filter=review_item_open_q(now) & Q(annotations_wanted=2)),
        annotated=Count("pk", filter=Q(status=ReviewItem.Status.ANNOTATED)),
    )
    annotations = Annotation.objects.aggregate(
        second_review=Count("pk", filter=Q(status=Annotation.Status.SUBMITTED)),
        disputed=Count("pk", filter=Q(status=Annotation.Status.DISPUTED)),
        approved=Count("pk", filter=Q(status=Annotation.Status.APPROVED)),
    )
    return {**items, **annotations}


def progress_today(*, user) -> dict:
    since = start_of_today()
    mine = Annotation.objects.filter(annotator=user, created_at__gte=since).aggregate(
        submitted=Count("pk"),
        approved=Count("pk", filter=Q(status=Annotation.Status.APPROVED)),
        rejected=Count("pk", filter=Q(status=Annotation.Status.REJECTED)),
    )
    mine["reviewed"] = Annotation.objects.filter(second_reviewer=user, reviewed_at__gte=since).count()
    return mine


def model_version_names() -> list[str]:
    return list(
        ReviewItem.objects.filter(
            status__in=[ReviewItem.Status.QUEUED, ReviewItem.Status.CLAIMED],
            output__model_version__isnull=False,
        )
        .values_list("output__model_version__name", flat=True)
        .distinct()
        .order_by("output__model_version__name")
    )


def second_review_queue(*, user) -> QuerySet[Annotation]:
    """Annotations awaiting a lead, other people's only: disputed pairs first (a pair blocks its
    item's training data until decided), then the oldest first."""
    disputed_first = Case(
        When(status=Annotation.Status.DISPUTED, then=Value(0)), default=Value(1), output_field=IntegerField()
    )
    return (
        Annotation.objects.filter(status__in=[Annotation.Status.SUBMITTED, Annotation.Status.DISPUTED])
        .exclude(annotator=user)
        .select_related("annotator", "review_item__output")
        .annotate(disputed_first=disputed_first)
        .order_by("disputed_first", "created_at", "pk")
    )


def annotation_twins(annotation: Annotation) -> list[Annotation]:
    if not annotation.blind:
        return []
    return list(
        Annotation.objects.filter(review_item_id=annotation.review_item_id, blind=True)
        .exclude(pk=annotation.pk)
        .select_related("annotator")
        .order_by("pk")
    )


@dataclass
class ReviewerAgreement:
    username: str
    pairs: int = 0
    error_pairs: list = field(default_factory=list)
    strategy_pairs: list = field(default_factory=list)
    overlaps: list = field(default_factory=list)

    @property
    def error_kappa(self) -> float | None:
        return cohen_kappa(self.error_pairs)

    @property
    def strategy_kappa(self) -> float | None:
        return cohen_kappa(self.strategy_pairs)

    @property
    def interval_overlap(self) -> float | None:
        return sum(self.overlaps) / len(self.overlaps) if self.overlaps else None


def _pair_labels(a: Annotation, b: Annotation) -> tuple[list, list, float]:
    errors = [(a.error_type, b.error_type)]
    # Steps are compared by position; where one annotation has more steps the rest is unpaired.
    strategies = [(x["strategy"], y["strategy"]) for x, y in zip(a.corrected_steps, b.corrected_steps)]
    overlap = interval_overlap((a.confidence_low, a.confidence_high), (b.confidence_low, b.confidence_high))
    return errors, strategies, overlap


def agreement_per_reviewer() -> tuple[list[ReviewerAgreement], ReviewerAgreement]:
    """Cohen's kappa on error and strategy labels and mean interval overlap (Jaccard), over every
    blind pair, per reviewer (their labels against their partners') and for everyone together."""
    blind = (
        Annotation.objects.filter(blind=True)
        .only(
            "review_item_id",
            "annotator_id",
            "error_type",
            "corrected_steps",
            "confidence_low",
            "confidence_high",
        )
        .order_by("review_item_id", "pk")
    )
    by_item: dict[int, list[Annotation]] = {}
    for a in blind:
        by_item.setdefault(a.review_item_id, []).append(a)
    names = dict(
        get_user_model().objects.filter(annotations__blind=True).values_list("pk", "username").distinct()
    )
    per: dict[int, ReviewerAgreement] = {}
    overall = ReviewerAgreement(username="everyone")
    for pair in by_item.values():
        if len(pair) < 2:
            continue
        a, b = pair[0], pair[1]
        errors, strategies, overlap = _pair_labels(a, b)
        overall.pairs += 1
        overall.error_pairs += errors
        overall.strategy_pairs += strategies
        overall.overlaps.append(overlap)
        for me, other in ((a, b), (b, a)):
            row = per.setdefault(me.annotator_id, ReviewerAgreement(username=names.get(me.annotator_id, "?")))
            mine_errors, mine_strategies, _ = _pair_labels(me, other)
            row.pairs += 1
            row.error_pairs += mine_errors
            row.strategy_pairs += mine_strategies
            row.overlaps.append(overlap)
    return sorted(per.values(), key=lambda r: r.username), overall


def audit_events(*, filters: dict) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.select_related("actor", "review_item", "annotation").order_by(
        "-created_at", "-pk"
    )
    if filters.get("action"):
        events = events.filter(action=filters["action"])
    if filters.get("actor"):
        events = events.filter(actor__username=filters["actor"])
    if filters.get("item"):
        events = events.filter(review_item_id=filters["item"])
    return events


def audit_detail_lines(detail: dict) -> list[tuple[str, str]]:
    """An event's details as (words, value) lines a lead reads: before/after pairs side by side."""
    lines = []
    before, after = detail.get("before"), detail.get("after")
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            lines.append((key.replace("_", " "), f"{_plain(before.get(key))} → {_plain(after.get(key))}"))
    for key, value in detail.items():
        if key in ("before", "after") and lines:
            continue
        lines.append((key.replace("_", " "), _plain(value)))
    return lines


def _plain(value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_plain(v) if not isinstance(v, dict) else v.get("text", _plain(v)) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def capture_quality(*, threshold: float | None = None) -> dict:
    """How well the score's capture finds wrong answers, from reviewers' approved verdicts.

    precision  of the low-score captures reviewers judged, the share whose original was wrong
               (any error type but "none").
    recall     the share of all wrong answers that the score captured. The audit sample is a
               random share of the answers the score let through; its wrong share, scaled to all
               let-through outputs, estimates the misses:
               recall = precision * captured / (precision * captured + miss_rate * let_through).
    None where there is nothing to judge yet; ``audited`` and ``judged`` say how much there was.
    """
    threshold = threshold if threshold is not None else capture_policy_get().score_below
    verdicts = Annotation.objects.filter(status=Annotation.Status.APPROVED)
    wrong = ~Q(error_type=Annotation.ErrorType.NONE)
    is_low = Q(review_item__reason=ReviewItem.Reason.LOW_SCORE)
    is_audit = Q(review_item__reason=ReviewItem.Reason.AUDIT_SAMPLE)
    counts = verdicts.aggregate(
        low_n=Count("pk", filter=is_low),
        low_wrong=Count("pk", filter=is_low & wrong),
        audit_n=Count("pk", filter=is_audit),
        audit_wrong=Count("pk", filter=is_audit & wrong),
    )
    outputs = Output.objects.aggregate(
        captured=Count("pk", filter=Q(cognition_score__lt=threshold)),
        let_through=Count("pk", filter=Q(cognition_score__gte=threshold)),
    )
    return capture_quality_from_counts(threshold=threshold, **counts, **outputs)


def capture_quality_from_counts(
    *,
    threshold: float,
    low_n: int,
    low_wrong: int,
    audit_n: int,
    audit_wrong: int,
    captured: int,
    let_through: int,
) -> dict:
    """capture_quality's arithmetic on counts made elsewhere (the dashboards' daily roll-ups)."""
    precision = low_wrong / low_n if low_n else None
    miss_rate = audit_wrong / audit_n if audit_n else None
    recall = None
    if precision is not None and miss_rate is not None:
        found = precision * captured
        missed = miss_rate * let_through
        recall = found / (found + missed) if found + missed else None
    return {
        "precision": precision,
        "recall": recall,
        "judged": low_n,
        "audited": audit_n,
        "miss_rate": miss_rate,
        "threshold": threshold,
    }
