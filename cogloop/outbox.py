"""The transactional outbox: enqueue after commit without ever losing a message.

``outbox_enqueue`` writes a row inside the caller's transaction and asks for a relay after
commit. ``outbox_relay`` publishes unsent rows in id order and marks each sent; a broker
error leaves the row for the next relay (a beat task runs one every few seconds, and every
new message triggers one). Delivery is at least once: tasks are idempotent.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from cogloop.celery import app
from cogloop.models import OutboxMessage

log = logging.getLogger("cogloop.outbox")


def outbox_enqueue(*, task_name: str, payload: dict) -> OutboxMessage:
    message = OutboxMessage.objects.create(task_name=task_name, payload=payload)
    transaction.on_commit(lambda: outbox_relay(limit=100))
    return message


def outbox_relay(*, limit: int = 500) -> int:
    """Publish up to ``limit`` unsent messages. Returns how many went out."""
    sent = 0
    with transaction.atomic():
        rows = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(sent_at__isnull=True)
            .order_by("pk")[:limit]
        )
        for row in rows:
            try:
                app.send_task(row.task_name, kwargs=row.payload, retry=False)
            except Exception as exc:  # broker down: keep the row, try again on the next relay
                OutboxMessage.objects.filter(
                    pk__in=[r.pk for r in rows if r.sent_at is None and r.pk >= row.pk]
                ).update(last_error=f"{type(exc).__name__}: {exc}"[:500])
                OutboxMessage.objects.filter(pk=row.pk).update(attempts=row.attempts + 1)
                log.warning("outbox relay stopped at message %s: %s", row.pk, exc)
                break
            row.sent_at = timezone.now()
            row.save(update_fields=["sent_at"])
            sent += 1
    return sent
