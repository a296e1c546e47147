from celery import shared_task

from cogloop.outbox import outbox_relay


@shared_task(name="cogloop.outbox_relay", ignore_result=True)
def outbox_relay_task() -> None:
    outbox_relay()
