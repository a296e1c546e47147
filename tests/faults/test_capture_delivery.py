"""A capture counts as done when its task has run: messages survive a Redis restart in the
shipped configuration, a message lost anyway is redone by the reconcile, a killed worker's
message comes back in minutes, and a bulk is many small messages."""

import os
import signal
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from cogloop.models import OutboxMessage
from feedback import services
from feedback.models import Feedback, ReviewItem

from ..django_fixtures import start_worker, stop_process
from .conftest import ROOT, make_outputs, post_feedback, shipped_redis_flags, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def test_shipped_redis_keeps_an_append_only_file():
    assert "--appendonly" in shipped_redis_flags() and "yes" in shipped_redis_flags()
    ci = (ROOT / ".ci" / "services").read_text()
    assert "--appendonly yes" in ci and "--dir" in ci


def test_queued_captures_survive_a_redis_crash(
    redis_backed, outbox_relay_running, product_app, api_key, api_client, record
):
    redis = redis_backed
    outputs = make_outputs(product_app, 10)
    answers = [post_feedback(api_client, api_key, o).status_code for o in outputs]
    # the relay published them: the broker holds them
    assert wait_for(lambda: not OutboxMessage.objects.filter(sent_at__isnull=True).exists(), timeout=10)
    wait_for(lambda: False, timeout=1.5)  # appendfsync everysec: the file has them after a second
    redis.stop(kill=True)
    redis.start()
    worker = start_worker(redis.url, "faults-redis-crash")
    try:
        wait_for(lambda: not Feedback.objects.filter(captured_at__isnull=True).exists())
    finally:
        stop_process(worker)
    figures = record(
        fault="Redis SIGKILLed and restarted with 10 captures queued (shipped AOF)",
        sent=10,
        acknowledged=answers.count(201),
        persisted=Feedback.objects.count(),
        captured=Feedback.objects.filter(captured_at__isnull=False).count(),
    )
    assert figures["lost"] == 0, "messages in the broker must survive its restart"


def test_the_reconcile_captures_what_a_broker_lost(
    redis_backed, outbox_relay_running, product_app, api_key, api_client, record
):
    redis = redis_backed
    outputs = make_outputs(product_app, 10)
    answers = [post_feedback(api_client, api_key, o).status_code for o in outputs]
    assert wait_for(lambda: not OutboxMessage.objects.filter(sent_at__isnull=True).exists(), timeout=10)
    redis.cli("FLUSHALL")  # a Redis restarted without persistence: every queued message gone
    worker = start_worker(redis.url, "faults-redis-lost")
    try:
        wait_for(lambda: False, timeout=2)
        assert Feedback.objects.filter(captured_at__isnull=True).count() == 10  # nothing ran them
        # The beat's reconcile (after its grace period, here none) finds and captures them.
        assert services.feedback_capture_reconcile(grace=timedelta(0)) == 10
        assert services.feedback_capture_reconcile(grace=timedelta(0)) == 0
    finally:
        stop_process(worker)
    figures = record(
        fault="Redis lost its queue (no persistence) with 10 captures queued",
        sent=10,
        acknowledged=answers.count(201),
        persisted=Feedback.objects.count(),
        captured=Feedback.objects.filter(captured_at__isnull=False).count(),
    )
    assert figures["lost"] == 0
    assert ReviewItem.objects.filter(output__in=outputs).count() == 10


def test_a_bulk_is_captured_in_chunks_of_fifty(product_app):
    outputs = make_outputs(product_app, 120, tag="bulk ")
    items = [{"data": {"output_id": str(o.uuid), "rating": 5}} for o in outputs]
    services.feedback_create_bulk(app=product_app, items=items)
    sizes = [len(m.payload["feedback_ids"]) for m in OutboxMessage.objects.order_by("pk")]
    assert sizes == [50, 50, 20]


def _backend_pids(like: str) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND query ILIKE %s",
            [like],
        )
        return [r[0] for r in cursor.fetchall()]


def _lock_review_items():
    """Hold the review queue's table lock from a connection of the test's own (psql)."""
    db = settings.DATABASES["default"]
    return subprocess.Popen(
        [
            "psql",
            "-h",
            db["HOST"] or "127.0.0.1",
            "-p",
            str(db["PORT"] or 5432),
            "-U",
            db["USER"] or "postgres",
            "-d",
            db["NAME"],
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "BEGIN; LOCK TABLE feedback_reviewitem IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _release(locker) -> None:
    with connection.cursor() as cursor:
        for pid in _backend_pids("%pg_sleep%"):
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    locker.wait(timeout=10)


def test_a_capture_task_retries_a_dropped_database_connection(
    redis_backed, outbox_relay_running, product_app, api_key, api_client, record
):
    redis = redis_backed
    output = make_outputs(product_app, 1, tag="drop ")[0]
    worker = start_worker(redis.url, "faults-db-drop")
    locker = _lock_review_items()
    try:
        assert wait_for(lambda: bool(_backend_pids("%pg_sleep%")), timeout=10)
        assert post_feedback(api_client, api_key, output).status_code == 201
        # The worker's capture waits on the lock; its connection is then cut under it.
        assert wait_for(lambda: bool(_backend_pids("%feedback_reviewitem%FOR UPDATE%")), timeout=20)
        with connection.cursor() as cursor:
            for pid in _backend_pids("%feedback_reviewitem%FOR UPDATE%"):
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        _release(locker)
        assert wait_for(lambda: ReviewItem.objects.filter(output=output).exists(), timeout=30)
    finally:
        if locker.poll() is None:
            locker.kill()
        stop_process(worker)
    log = (Path(settings.VAR_DIR) / "faults-db-drop.log").read_text()
    assert "Retry in" in log, "the task must retry the OperationalError, not drop the capture"
    record(
        fault="the capture task's PostgreSQL connection terminated mid-task",
        sent=1,
        acknowledged=1,
        persisted=Feedback.objects.count(),
        captured=Feedback.objects.filter(captured_at__isnull=False).count(),
    )


def test_a_killed_workers_capture_comes_back_within_the_visibility_timeout(
    redis_backed, outbox_relay_running, product_app, api_key, api_client, record, monkeypatch
):
    # The shipped default is minutes; the test shortens it to seconds through the same setting.
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 0) <= 900
    monkeypatch.setenv("BROKER_VISIBILITY_TIMEOUT", "4")
    redis = redis_backed
    output = make_outputs(product_app, 1, tag="kill ")[0]
    worker = start_worker(redis.url, "faults-kill-1")
    locker = _lock_review_items()
    try:
        assert wait_for(lambda: bool(_backend_pids("%pg_sleep%")), timeout=10)
        assert post_feedback(api_client, api_key, output).status_code == 201
        assert wait_for(lambda: bool(_backend_pids("%feedback_reviewitem%FOR UPDATE%")), timeout=20)
        os.killpg(worker.pid, signal.SIGKILL)  # mid-task, its message taken and not acked
        worker.wait(timeout=10)
        _release(locker)
        worker = start_worker(redis.url, "faults-kill-2")
        assert wait_for(lambda: ReviewItem.objects.filter(output=output).exists(), timeout=40)
    finally:
        if locker.poll() is None:
            locker.kill()
        if worker.poll() is None:
            stop_process(worker)
    record(
        fault="worker SIGKILLed in the middle of a capture",
        sent=1,
        acknowledged=1,
        persisted=Feedback.objects.count(),
        captured=Feedback.objects.filter(captured_at__isnull=False).count(),
    )
