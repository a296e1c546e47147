"""Reads of the review queue that more than one app needs."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from feedback.models import ReviewItem


def review_item_open_q(now: datetime) -> Q:
    """Open for a claim: queued, or claimed under a lease that ran out (an expired lease returns
    the item to the queue)."""
    return Q(status=ReviewItem.Status.QUEUED) | Q(status=ReviewItem.Status.CLAIMED, lease_expires_at__lt=now)


def review_item_lease_live(item: ReviewItem, now: datetime | None = None) -> bool:
    """Whether somebody holds the item under a lease that has not run out."""
    now = now or timezone.now()
    return (
        item.status == ReviewItem.Status.CLAIMED
        and item.lease_expires_at is not None
        and item.lease_expires_at >= now
    )
