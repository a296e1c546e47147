"""The transactional outbox: enqueue after commit without ever losing a message.

``outbox_enqueue`` writes a row inside the caller's transaction. ``outbox_relay`` publishes
unsent rows in id order and marks them sent; a broker error leaves the rows for the next
relay. Delivery is at least once: tasks are idempotent.

Who relays. With PostgreSQL the request that wrote the row does not: publishing to the broker
after commit doubled a feedback request's time and tied its latency to Redis. The beat runs
``outbox_relay_loop`` on a thread of its own (cogloop.beat), which polls every
``OUTBOX_RELAY_POLL_S`` (0.2 s) and relays at once again while rows keep coming, so a message
waits at most about one poll interval before it reaches the broker. The periodic task
``cogloop.outbox_relay`` (every 5 s) stays as the backstop. Embedded (SQLite, no beat in the
demo) the request still relays after its commit (``OUTBOX_RELAY_AFTER_COMMIT``).

Why a short poll and not LISTEN/NOTIFY: a transaction that sends NOTIFY takes a lock for the
whole database at commit and holds it through the commit's flush, so every notifying write
would commit one after another; the poll costs one indexed query per interval and nothing in
the writes.

"Sent" means the broker took the message, not that its task ran: a Redis restart without
persistence, or a task that spent its retries, still loses it. Work that must happen therefore
records its own completion (``Feedback.captured_at``, a training run's stage) and has a
periodic reconcile that redoes what never completed.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from cogloop.celery import app
from cogloop.models import OutboxMessage

log = logging.getLogger("cogloop.outbox")


def outbox_enqueue(*, task_name: str, payload: dict) -> OutboxMessage:
    (message,) = outbox_enqueue_many(task_name=task_name, payloads=[payload])
    return message


def outbox_enqueue_many(*, task_name: str, payloads: list[dict]) -> list[OutboxMessage]:
    """Several messages for one task in one INSERT (a bulk's capture chunks)."""
    now = timezone.now()
    messages = OutboxMessage.objects.bulk_create(
        [OutboxMessage(task_name=task_name, payload=p, created_at=now) for p in payloads]
    )
    outbox_written()
    return messages


def outbox_written() -> None:
    """For a service that wrote outbox rows in its own SQL: what outbox_enqueue does after."""
    if settings.OUTBOX_RELAY_AFTER_COMMIT:
        transaction.on_commit(_relay_after_commit)


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
    sent: list[int] = []
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
                OutboxMessage.objects.filter(pk__in=[r.pk for r in rows if r.pk >= row.pk]).update(
                    last_error=f"{type(exc).__name__}: {exc}"[:500]
                )
                OutboxMessage.objects.filter(pk=row.pk).update(attempts=row.attempts + 1)
                log.warning("outbox relay stopped at message %s: %s", row.pk, exc)
                _broker_down_until = time.monotonic() + BROKER_DOWN_PAUSE_S
                break
            sent.append(row.pk)
        if sent:  # one UPDATE for the batch, not one per message
            OutboxMessage.objects.filter(pk__in=sent).update(sent_at=timezone.now())
    return len(sent)


def outbox_relay_loop(*, stop: threading.Event, interval: float | None = None, limit: int = 500) -> None:
    """Relay until ``stop`` is set: again at once while full batches come, else every
    ``interval`` seconds. Errors (the database or the broker away) are logged and waited out:
    the loop never ends by itself. Runs on a thread of its own with its own connection."""
    interval = settings.OUTBOX_RELAY_POLL_S if interval is None else interval
    try:
        while not stop.is_set():
            sent = 0
            try:
                if time.monotonic() >= _broker_down_until:
                    sent = outbox_relay(limit=limit)
            except Exception as exc:
                log.warning("outbox relay failed, retrying: %s: %s", type(exc).__name__, exc)
                close_old_connections()
                if connection.connection is not None and not connection.is_usable():
                    connection.close()
                stop.wait(max(interval, 1.0))
                continue
            if sent < limit:
                stop.wait(interval)
    finally:
        connection.close()


def outbox_relay_thread_start(*, interval: float | None = None) -> tuple[threading.Thread, threading.Event]:
    """Start outbox_relay_loop on a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=outbox_relay_loop,
        kwargs={"stop": stop, "interval": interval},
        name="outbox-relay",
        daemon=True,
    )
    thread.start()
    return thread, stop
