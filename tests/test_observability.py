import pytest

from inference import services


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_503_without_a_model_and_200_with_one(client):
    r = client.get("/readyz")
    checks = r.json()["checks"]
    assert r.status_code == 503 and (checks["database"], checks["model"]) == ("ok", "no model loaded")
    services.model_version_ensure_base()
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] is True


@pytest.mark.django_db
def test_metrics_expose_latency_scores_queue_and_active_model(client, product_app, api_key):
    base = services.model_version_ensure_base()
    services.output_create(app=product_app, prompt="p", raw_text="Step 1 [deduction]: 1 + 1 = 3\n</think>\n3")
    client.post(
        "/api/v1/generate",
        {"prompt": "Start with 3. Add 4. What is the result?"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    text = client.get("/metrics").content.decode()
    assert 'cogloop_http_request_seconds_count{method="POST",route="api/v1/generate",status="201"}' in text
    assert "cogloop_cognition_score_bucket" in text
    from feedback.models import ReviewItem

    assert ReviewItem.objects.filter(status="queued").count() == 1
    assert 'cogloop_review_queue_depth{status="queued"} 1.0' in text
    assert f'cogloop_active_model_version{{name="{base.name}"}} 1.0' in text
    assert "cogloop_generation_batch_size_count" in text


def test_json_logs_carry_extra_fields_and_exceptions():
    import json
    import logging

    from cogloop.logs import JsonFormatter

    logger = logging.getLogger("cogloop.test")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logger.makeRecord(
            "cogloop.test",
            logging.ERROR,
            __file__,
            1,
            "run %s failed",
            (7,),
            exc_info=__import__("sys").exc_info(),
            extra={"run_id": 7, "stage": "training"},
        )
    entry = json.loads(JsonFormatter().format(record))
    assert (
        entry["message"] == "run 7 failed" and entry["level"] == "ERROR" and entry["logger"] == "cogloop.test"
    )
    assert entry["run_id"] == 7 and entry["stage"] == "training"
    assert "ValueError: boom" in entry["exception"] and entry["ts"].endswith("+00:00")
