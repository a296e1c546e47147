"""Capture policy and the review queue's state changes."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from cogloop.errors import ApplicationError
from feedback.models import ReviewItem
from inference.models import Output

LEASE = timedelta(minutes=10)


def review_item_capture_for_output(output: Output) -> ReviewItem | None:
    """The output-created hook: queue an output whose cognition score is below the threshold."""
    threshold = settings.COGLOOP["CAPTURE_SCORE_BELOW"]
    if output.cognition_score >= threshold:
        return None
    item, _ = ReviewItem.objects.get_or_create(
        output=output,
        defaults={
            "reason": ReviewItem.Reason.LOW_SCORE,
            "reason_detail": f"cognition score {output.cognition_score:.2f} < {threshold:.2f}",
            "priority": output.cognition_score,
        },
    )
    return item


def _claimable(now):
    return Q(status=ReviewItem.Status.QUEUED) | Q(status=ReviewItem.Status.CLAIMED, lease_expires_at__lt=now)


@transaction.atomic
def review_item_claim(*, item_id: int, user) -> ReviewItem:
    """Claim an item with a lease. Another reviewer's live lease is a refusal, not a steal."""
    now = timezone.now()
    item = ReviewItem.objects.select_for_update().filter(pk=item_id).first()
    if item is None:
        raise ApplicationError("no such review item", code="not_found", status=404)
    if item.status == ReviewItem.Status.CLAIMED and item.claimed_by_id == user.pk:
        pass  # renewing one's own lease
    elif not ReviewItem.objects.filter(_claimable(now), pk=item.pk).exists():
        raise ApplicationError("this item is claimed by another reviewer or already done", code="not_claimable", status=409)
    item.status = ReviewItem.Status.CLAIMED
    item.claimed_by = user
    item.lease_expires_at = now + LEASE
    item.save(update_fields=["status", "claimed_by", "lease_expires_at"])
    return item


@transaction.atomic
def review_item_claim_next(*, user) -> ReviewItem | None:
    now = timezone.now()
    candidates = ReviewItem.objects.select_for_update(skip_locked=True).filter(_claimable(now))
    item = candidates.order_by("priority", "created_at").first()
    if item is None:
        return None
    return review_item_claim(item_id=item.pk, user=user)


def review_item_require_lease(*, item: ReviewItem, user) -> None:
    if item.status != ReviewItem.Status.CLAIMED or item.claimed_by_id != user.pk:
        raise ApplicationError("you do not hold this item; claim it again", code="no_lease", status=409)
    if item.lease_expires_at is None or item.lease_expires_at < timezone.now():
        raise ApplicationError("your lease on this item expired; claim it again", code="lease_expired", status=409)


@transaction.atomic
def review_item_mark_annotated(*, item: ReviewItem) -> ReviewItem:
    item.status = ReviewItem.Status.ANNOTATED
    item.lease_expires_at = None
    item.save(update_fields=["status", "lease_expires_at"])
    return item
