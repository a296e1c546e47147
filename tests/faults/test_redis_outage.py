"""Redis down: the product API keeps answering, /readyz says so truthfully, nothing is lost."""

import pytest

from feedback.models import Feedback, ReviewItem
from inference import services as inference_services

from ..django_fixtures import start_worker, stop_process
from .conftest import make_outputs, post_feedback, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def test_api_answers_without_redis_and_captures_everything_when_it_returns(
    redis_backed, product_app, api_key, api_client, record
):
    redis = redis_backed
    inference_services.model_version_ensure_base()
    outputs = make_outputs(product_app, 20)
    redis.stop()

    answers = [post_feedback(api_client, api_key, o).status_code for o in outputs]
    generated = api_client.post(
        "/api/v1/generate",
        {"prompt": "Begin at 5. Take away 2. What remains?", "max_new_tokens": 8},
        format="json",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    ready = api_client.get("/readyz")
    assert answers == [201] * 20, "feedback must be accepted while Redis is down"
    assert generated.status_code == 201
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert ready.json()["checks"]["redis"].startswith("error: ")

    # Redis back: a worker and the beat relay deliver what waited in the outbox.
    redis.start()
    worker = start_worker(redis.url, "faults-redis-outage")
    try:
        from cogloop.outbox import outbox_relay

        assert wait_for(
            lambda: outbox_relay() >= 0 and not Feedback.objects.filter(captured_at__isnull=True).exists()
        )
    finally:
        stop_process(worker)
    assert api_client.get("/readyz").json()["checks"]["redis"] == "ok"
    figures = record(
        fault="Redis stopped during 20 feedback posts and a generation",
        sent=20,
        acknowledged=answers.count(201),
        persisted=Feedback.objects.count(),
        captured=Feedback.objects.filter(captured_at__isnull=False).count(),
    )
    assert figures["lost"] == 0
    assert ReviewItem.objects.filter(output__in=outputs).count() == 20  # every 1/5 went to review


def test_the_throttle_still_limits_per_process_without_redis(
    redis_backed, product_app, api_key, api_client, monkeypatch
):
    from rest_framework.throttling import SimpleRateThrottle

    # DRF reads the rates into the class when it is defined: patch them there (and only there,
    # so the next test counts with the real limit again).
    monkeypatch.setattr(
        SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, "api_key": "3/min"}
    )
    redis_backed.stop()
    outputs = make_outputs(product_app, 4, tag="t")
    codes = [post_feedback(api_client, api_key, o).status_code for o in outputs]
    assert codes == [201, 201, 201, 429]
