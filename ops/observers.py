"""Metrics observed where review events happen, from the rows those events write.

A capture is a new ReviewItem; a review action is a new AuditEvent (the audit trail records
every submit, approve, reject, withdraw and supersede). Counted once the transaction commits,
so a rolled-back request counts nothing. Observation only: no rule lives here.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_save

from annotation.models import AuditEvent
from cogloop.metrics import observe_capture, observe_review
from feedback.models import ReviewItem

REVIEW_ACTIONS = frozenset(
    {
        AuditEvent.Action.SUBMIT,
        AuditEvent.Action.APPROVE,
        AuditEvent.Action.REJECT,
        AuditEvent.Action.WITHDRAW,
        AuditEvent.Action.SUPERSEDE,
    }
)


def _review_item_saved(sender, instance: ReviewItem, created: bool, **kwargs) -> None:
    if created:
        reason = instance.reason
        transaction.on_commit(lambda: observe_capture(reason))


def _audit_event_saved(sender, instance: AuditEvent, created: bool, **kwargs) -> None:
    if created and instance.action in REVIEW_ACTIONS:
        action = str(instance.action)
        transaction.on_commit(lambda: observe_review(action))


def connect() -> None:
    post_save.connect(_review_item_saved, sender=ReviewItem, dispatch_uid="ops.metrics.capture")
    post_save.connect(_audit_event_saved, sender=AuditEvent, dispatch_uid="ops.metrics.review")
