"""The beat scheduler: the schedule lives in the database (django-celery-beat, editable in the
admin under Periodic tasks), and only the beat that holds the beat lock sends anything.

A second beat (a scaled-up service, a container restarted beside its old self) waits on the
lock and sends nothing until the first is gone. The lock is a PostgreSQL session advisory lock
on a connection of its own: it goes with that connection, so a killed beat frees it at once
and a beat that loses its connection stops (its restart policy starts it again, waiting for
the lock). Embedded (SQLite) it is an flock on ``var/beat.lock``.

The beat that holds the lock also runs the outbox relay on a thread of its own
(cogloop.outbox.outbox_relay_loop): write requests no longer publish, and one relay polling
every fraction of a second keeps a capture's wait short.

``CELERY_BEAT_SCHEDULE`` seeds the entries it names the first time a beat starts; after that
the database rows are the schedule, so an operator's change in the admin survives a restart.
"""

from __future__ import annotations

import fcntl
import logging
import time

from django.conf import settings
from django.db import connections
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from cogloop.outbox import outbox_relay_thread_start

log = logging.getLogger("cogloop.beat")

# pg_advisory_lock key of the beat (any fixed 64-bit number, distinct from the registry's).
BEAT_LOCK_KEY = 0x636F_676C_6F6F_7002
LOCK_POLL_S = 2.0
LOCK_CHECK_EVERY_S = 15.0


class _PostgresLock:
    def __init__(self) -> None:
        # Not Django's per-thread connection: close_old_connections() would drop it, and the lock.
        self.wrapper = connections.create_connection("default")

    def try_acquire(self) -> bool:
        self.wrapper.ensure_connection()
        with self.wrapper.connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [BEAT_LOCK_KEY])
            return bool(cursor.fetchone()[0])

    def alive(self) -> bool:
        try:
            with self.wrapper.connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        except Exception:
            return False


class _FileLock:
    def __init__(self) -> None:
        path = settings.VAR_DIR / "beat.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "a")  # noqa: SIM115  (held open for the process's life)

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def alive(self) -> bool:
        return True


def beat_lock_acquire() -> _PostgresLock | _FileLock:
    """Block until this process is the only beat."""
    lock = _PostgresLock() if connections["default"].vendor == "postgresql" else _FileLock()
    waited = False
    while not lock.try_acquire():
        if not waited:
            log.info("another beat holds the beat lock; this one waits and sends nothing")
            waited = True
        time.sleep(LOCK_POLL_S)
    log.info("holding the beat lock: this beat sends the schedule")
    return lock


class LockedDatabaseScheduler(DatabaseScheduler):
    def __init__(self, *args, **kwargs):
        self._beat_lock = beat_lock_acquire()
        self._lock_checked = time.monotonic()
        self._relay, self._relay_stop = outbox_relay_thread_start()
        super().__init__(*args, **kwargs)

    def update_from_dict(self, mapping):
        seeded = set(PeriodicTask.objects.filter(name__in=list(mapping)).values_list("name", flat=True))
        return super().update_from_dict({k: v for k, v in mapping.items() if k not in seeded})

    def tick(self, *args, **kwargs):
        if time.monotonic() - self._lock_checked > LOCK_CHECK_EVERY_S:
            self._lock_checked = time.monotonic()
            if not self._beat_lock.alive():
                # The lock went with the connection: another beat may hold it now.
                log.error("lost the beat lock's database connection; stopping this beat")
                raise SystemExit(1)
        return super().tick(*args, **kwargs)
