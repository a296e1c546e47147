"""The transactional outbox: enqueue after commit without ever losing a message.

``outbox_enqueue`` writes a row inside the caller's transaction and asks for a relay after
commit. ``outbox_relay`` publishes unsent rows in id order and marks each sent; a broker
error leaves the row for the next relay (a beat task runs one every few seconds, and every
new message triggers one). Delivery is at least once: tasks are idempotent.

"Sent" means the broker took the message, not that its task ran: a Redis restart without
persistence, or a task that spent its retries, still loses it. Work that must happen therefore
records its own completion (``Feedback.captured_at``, a training run's stage) and has a
periodic reconcile that redoes what never completed.
"""

from __future__ import annotations

import logging
import time

from django.db import transaction
from django.utils import timezone

from cogloop.celery import app
from cogloop.models import OutboxMessage

log = logging.getLogger("cogloop.outbox")


def outbox_enqueue(*, task_name: str, payload: dict) -> OutboxMessage:
    message = OutboxMessage.objects.create(task_name=task_name, payload=payload)
    transaction.on_commit(_relay_after_commit)
    return message


# After a broker error, relays after commit pause this long: each would wait for a broker that
# is away and slow every write request; the beat relay keeps trying meanwhile.
BROKER_DOWN_PAUSE_S = 5.0
_broker_down_until = 0.0


def _relay_after_commit() -> None:
    # The caller's data is committed: whatever happens here (the database gone a moment after
    # the commit, the broker away) must not turn its answer into an error. The beat relay
    # publishes what this one could not.
    if time.monotonic() < _broker_down_until:
        return
    try:
        outbox_relay(limit=100)
    except Exception as exc:
        log.warning("relay after commit failed, the beat relay will publish: %s: %s", type(exc).__name__, exc)


def outbox_relay(*, limit: int = 500) -> int:
    """Publish up to ``limit`` unsent messages. Returns how many went out."""
    global _broker_down_until
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
                _broker_down_until = time.monotonic() + BROKER_DOWN_PAUSE_S
                break
            row.sent_at = timezone.now()
            row.save(update_fields=["sent_at"])
            sent += 1
    return sent
