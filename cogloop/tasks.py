from celery import shared_task

from cogloop.errors import RETRY_TRANSIENT
from cogloop.outbox import outbox_relay


@shared_task(name="cogloop.outbox_relay", ignore_result=True, **RETRY_TRANSIENT)
def outbox_relay_task() -> None:
    outbox_relay()
