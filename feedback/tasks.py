from celery import shared_task

from cogloop.errors import RETRY_TRANSIENT
from feedback import services


@shared_task(name="feedback.feedback_apply_capture", acks_late=True, **RETRY_TRANSIENT)
def feedback_apply_capture(feedback_ids: list[int]) -> None:
    # One transaction per feedback: a retry after a database blip redoes only the ones not yet
    # marked captured.
    for feedback_id in feedback_ids:
        services.feedback_apply_capture(feedback_id=feedback_id)


@shared_task(name="feedback.feedback_capture_reconcile", ignore_result=True, **RETRY_TRANSIENT)
def feedback_capture_reconcile() -> None:
    services.feedback_capture_reconcile()
