"""Redis down never loses feedback: a real Redis is stopped and started during the test."""

import json
import shutil
import socket
import subprocess
import time

import pytest

from cogloop.celery import app
from cogloop.models import OutboxMessage
from cogloop.outbox import outbox_relay
from feedback.models import ReviewItem
from inference import services as inference_services
from tests.django_fixtures import start_worker, stop_process

GOOD = "Step 1 [deduction]: 3 + 4 = 7\n</think>\n\nThe answer is 7."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test's own, so stopping it disturbs nothing else."""

    def __init__(self):
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            if (
                subprocess.run(
                    ["redis-cli", "-p", str(self.port), "ping"], capture_output=True
                ).stdout.strip()
                == b"PONG"
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def private_redis():
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is needed for this test (.ci/run installs it)")
    redis = PrivateRedis()
    redis.start()
    yield redis
    if redis.proc.poll() is None:
        redis.stop()


@pytest.fixture
def publish_to(private_redis):
    """Point this process's Celery publisher at the private Redis for the test."""
    old = app.conf.broker_url
    app.conf.broker_url = private_redis.url
    app._pool = None
    app.amqp._producer_pool = None
    yield private_redis
    app.conf.broker_url = old
    app._pool = None
    app.amqp._producer_pool = None


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


@pytest.mark.worker
def test_feedback_is_accepted_with_redis_down_and_processed_when_it_returns(
    transactional_db, publish_to, outbox_relay_running, api_key, product_app, api_client
):
    redis = publish_to
    worker = start_worker(redis.url, "outbox-worker")
    try:
        first, second = (
            inference_services.output_create(
                app=product_app, prompt=f"Start with {n}. Add 4. What is the result?", raw_text=GOOD
            )
            for n in (3, 13)
        )
        headers = {"Authorization": f"Bearer {api_key}"}

        def post(output):
            return api_client.post(
                "/api/v1/feedback",
                data=json.dumps({"output_id": str(output.uuid), "rating": 1}),
                content_type="application/json",
                headers=headers,
            )

        # Redis up: relayed within a poll, processed by the worker.
        assert post(first).status_code == 201
        assert _wait_for(lambda: ReviewItem.objects.filter(output=first).exists()), (
            "the worker never captured it"
        )

        # Redis down: the API still answers 201 and the work waits in the outbox.
        redis.stop()
        started = time.monotonic()
        assert post(second).status_code == 201
        assert time.monotonic() - started < 10
        pending = OutboxMessage.objects.filter(sent_at__isnull=True)
        assert _wait_for(lambda: pending.exclude(last_error="").count() == 1, timeout=15)
        assert pending.count() == 1
        assert outbox_relay() == 0
        assert not ReviewItem.objects.filter(output=second).exists()

        # Redis back: the next relay publishes, the worker reconnects and does the work.
        redis.start()
        assert _wait_for(lambda: outbox_relay() == 1 or not pending.exists(), timeout=30)
        assert _wait_for(lambda: ReviewItem.objects.filter(output=second).exists()), "the work was lost"
        item = ReviewItem.objects.get(output=second)
        assert item.reason == ReviewItem.Reason.LOW_RATING and "rated 1/5" in item.reason_detail
    finally:
        stop_process(worker)
