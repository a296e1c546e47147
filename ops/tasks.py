"""Entry points of the ops app's work, sent by the beat."""

from celery import shared_task

from cogloop.errors import RETRY_TRANSIENT
from ops import services


@shared_task(name="ops.rollups_refresh", ignore_result=True, **RETRY_TRANSIENT)
def rollups_refresh() -> None:
    # Idempotent: each day is replaced whole, so a doubled or retried run recomputes it again.
    services.rollups_refresh()
