import json

import pytest

from cogloop.models import OutboxMessage
from feedback import services
from feedback.models import CapturePolicy, Feedback, ReviewItem
from inference import services as inference_services

GOOD = "Step 1 [deduction]: 3 + 4 = 7\n</think>\n\nThe answer is 7."
BAD = "Step 1 [deduction]: 42 - 8 = 50\n</think>\n\nThe answer is 50."


@pytest.fixture
def output(product_app):
    return inference_services.output_create(
        app=product_app, prompt="Start with 3. Add 4. What is the result?", raw_text=GOOD
    )


@pytest.fixture
def foreign_output(db):
    from inference.models import ProductApp

    app = ProductApp.objects.create(name="elsewhere")
    return inference_services.output_create(
        app=app, prompt="Start with 5. Add 1. What is the result?", raw_text=GOOD
    )


def send(client, key, body, path="/api/v1/feedback", **headers):
    return client.post(
        path,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}", **headers},
    )


def test_create_writes_feedback_and_an_outbox_row_together(api_client, api_key, output):
    r = send(
        api_client, api_key, {"output_id": str(output.uuid), "rating": 2, "comment": "meh", "flags": ["slow"]}
    )
    assert r.status_code == 201, r.content
    assert r.json()["rating"] == 2 and r.json()["output_id"] == str(output.uuid)
    fb = Feedback.objects.get()
    assert fb.app == output.app and fb.flags == ["slow"]
    assert OutboxMessage.objects.get().payload == {"feedback_ids": [fb.pk]}


def test_thumb_is_stored_as_up_or_down(api_client, api_key, output):
    r = send(api_client, api_key, {"output_id": str(output.uuid), "thumb": "down"})
    assert r.status_code == 201 and r.json()["thumb"] == "down"
    assert Feedback.objects.get().thumb is False


def test_replay_returns_the_first_result_and_writes_nothing(api_client, api_key, output):
    body = {"output_id": str(output.uuid), "rating": 4}
    first = send(api_client, api_key, body, **{"Idempotency-Key": "k-1"})
    again = send(api_client, api_key, body, **{"Idempotency-Key": "k-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Feedback.objects.count() == 1 and OutboxMessage.objects.count() == 1


def test_key_in_the_body_works_like_the_header(api_client, api_key, output):
    body = {"output_id": str(output.uuid), "rating": 4, "idempotency_key": "body-key"}
    assert send(api_client, api_key, body).status_code == 201
    assert send(api_client, api_key, body).status_code == 200
    assert Feedback.objects.count() == 1


def test_same_key_with_a_different_body_is_409(api_client, api_key, output):
    send(api_client, api_key, {"output_id": str(output.uuid), "rating": 4}, **{"Idempotency-Key": "k-2"})
    r = send(api_client, api_key, {"output_id": str(output.uuid), "rating": 1}, **{"Idempotency-Key": "k-2"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "idempotency_conflict"
    assert Feedback.objects.get().rating == 4


def test_unknown_and_foreign_outputs_look_the_same(api_client, api_key, foreign_output):
    import uuid

    unknown = send(api_client, api_key, {"output_id": str(uuid.uuid4()), "rating": 3})
    foreign = send(api_client, api_key, {"output_id": str(foreign_output.uuid), "rating": 3})
    assert unknown.status_code == foreign.status_code == 404
    assert unknown.json() == foreign.json()
    assert "output_id" in foreign.json()["error"]["fields"]
    assert Feedback.objects.count() == 0 and OutboxMessage.objects.count() == 0


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": "abc"}, "rating"),
        ({"rating": True}, "rating"),
        ({"rating": 2.5}, "rating"),
        ({"thumb": 1}, "thumb"),
        ({"thumb": True}, "thumb"),
        ({"thumb": "sideways"}, "thumb"),
        ({"comment": "x" * 4001, "rating": 3}, "comment"),
        ({"comment": 12, "rating": 3}, "comment"),
        ({"flags": "wrong", "rating": 3}, "flags"),
        ({"output_id": "not-a-uuid"}, "output_id"),
        ({}, "rating"),
    ],
)
def test_bad_fields_are_400_named_and_write_nothing(api_client, api_key, output, patch, field):
    body = {"output_id": str(output.uuid), **patch}
    r = send(api_client, api_key, body)
    assert r.status_code == 400, r.content
    assert field in r.json()["error"]["fields"], r.json()
    assert Feedback.objects.count() == 0 and OutboxMessage.objects.count() == 0


def test_malformed_json_is_400(api_client, api_key):
    r = api_client.post(
        "/api/v1/feedback",
        data="{nope",
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"


def test_bulk_reports_per_item_and_writes_the_valid_ones(api_client, api_key, output, foreign_output):
    items = [
        {"output_id": str(output.uuid), "rating": 1, "idempotency_key": "b-1"},
        {"output_id": str(output.uuid), "rating": 9},
        {"output_id": str(foreign_output.uuid), "rating": 3},
        "not an object",
        {"output_id": str(output.uuid), "thumb": "up", "idempotency_key": "b-1"},
        {"output_id": str(output.uuid), "thumb": "up"},
    ]
    r = send(api_client, api_key, {"items": items}, path="/api/v1/feedback/bulk")
    assert r.status_code == 200, r.content
    body = r.json()
    statuses = [(x["index"], x["status"]) for x in body["results"]]
    assert statuses == [
        (0, "created"),
        (1, "error"),
        (2, "error"),
        (3, "error"),
        (4, "error"),
        (5, "created"),
    ]
    assert "rating" in body["results"][1]["errors"]
    assert body["results"][2]["code"] == "not_found"
    assert body["results"][4]["code"] == "duplicate_in_request"
    assert (body["created"], body["errors"]) == (2, 4)
    assert Feedback.objects.count() == 2
    assert OutboxMessage.objects.count() == 1  # one relay message for the whole batch

    again = send(api_client, api_key, {"items": [items[0]]}, path="/api/v1/feedback/bulk").json()
    assert again["results"][0] == {"index": 0, "status": "replayed", "id": body["results"][0]["id"]}
    changed = send(
        api_client, api_key, {"items": [{**items[0], "rating": 2}]}, path="/api/v1/feedback/bulk"
    ).json()
    assert changed["results"][0]["code"] == "idempotency_conflict"
    assert Feedback.objects.count() == 2


@pytest.mark.parametrize(
    "body, status",
    [({"items": []}, 400), ({"items": "x"}, 400), ([], 400), ({"items": [{"rating": 1}] * 1001}, 413)],
)
def test_bulk_envelope_errors_write_nothing(api_client, api_key, body, status):
    r = send(api_client, api_key, body, path="/api/v1/feedback/bulk")
    assert r.status_code == status
    assert Feedback.objects.count() == 0


def test_bad_rating_captures_the_output_with_its_reason(output):
    fb = Feedback.objects.create(app=output.app, output=output, rating=1)
    item = services.feedback_apply_capture(feedback_id=fb.pk)
    assert item.reason == ReviewItem.Reason.LOW_RATING and "rated 1/5" in item.reason_detail
    assert item.priority == 0.0


def test_good_rating_captures_nothing(output):
    fb = Feedback.objects.create(app=output.app, output=output, rating=5, thumb=True)
    assert services.feedback_apply_capture(feedback_id=fb.pk) is None
    assert ReviewItem.objects.count() == 0


def test_thumb_down_and_flags_capture(output):
    fb = Feedback.objects.create(app=output.app, output=output, thumb=False, flags=["unsafe"])
    item = services.feedback_apply_capture(feedback_id=fb.pk)
    assert "thumb down" in item.reason_detail and "flagged unsafe" in item.reason_detail


def test_near_duplicate_prompts_are_not_queued_twice(product_app):
    a = inference_services.output_create(
        app=product_app, prompt="Start with 42. Take away 8. What is the result?", raw_text=BAD
    )
    b = inference_services.output_create(
        app=product_app, prompt="start with 42,  take away 8 -- what is the result", raw_text=BAD
    )
    assert hasattr(a, "review_item")
    assert ReviewItem.objects.count() == 1 and not ReviewItem.objects.filter(output=b).exists()


def test_audit_share_samples_high_scores(product_app):
    CapturePolicy.objects.update_or_create(pk=1, defaults={"audit_share": 1.0})
    item = inference_services.output_create(
        app=product_app,
        prompt="Start with 1. Add 1. What is the result?",
        raw_text="Step 1 [deduction]: 1 + 1 = 2\n</think>\n\nThe answer is 2.",
    ).review_item
    assert item.reason == ReviewItem.Reason.AUDIT_SAMPLE and item.priority > 1.0
    CapturePolicy.objects.filter(pk=1).update(audit_share=0.0)
    other = inference_services.output_create(
        app=product_app,
        prompt="Start with 2. Add 1. What is the result?",
        raw_text="Step 1 [deduction]: 2 + 1 = 3\n</think>\n\nThe answer is 3.",
    )
    assert not ReviewItem.objects.filter(output=other).exists()


def test_queue_order_is_lowest_priority_then_oldest(product_app, reviewer):
    half_wrong = (
        "Step 1 [deduction]: 10 + 1 = 11\nStep 2 [deduction]: 11 - 1 = 12\n</think>\n\nThe answer is 12."
    )
    prompts = [
        "Start with 10. Add 1. Take away 1. What is the result?",
        "Start with 20. Add 1. Take away 1. What is the result?",
    ]
    first = inference_services.output_create(
        app=product_app, prompt=prompts[0], raw_text=half_wrong
    ).review_item
    second = inference_services.output_create(
        app=product_app, prompt=prompts[1], raw_text=half_wrong
    ).review_item
    assert first.priority == second.priority > 0
    rated = Feedback.objects.create(app=product_app, output=second.output, rating=1)
    services.feedback_apply_capture(feedback_id=rated.pk)  # the worst rating moves it ahead
    assert services.review_item_claim_next(user=reviewer) == second
    assert services.review_item_claim_next(user=reviewer) == first


def test_throttle_per_key(api_client, api_key, other_api_key, output, monkeypatch):
    from django.core.cache import cache

    from inference.api import ApiKeyRateThrottle

    cache.clear()
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "2/min"})
    body = {"output_id": str(output.uuid), "rating": 3}
    assert [send(api_client, api_key, body).status_code for _ in range(3)] == [201, 201, 429]
    assert (
        send(
            api_client, other_api_key, {**body, "output_id": "00000000-0000-0000-0000-000000000000"}
        ).status_code
        == 404
    )
    cache.clear()


def test_openapi_schema_covers_every_endpoint_with_examples(client, db):
    r = client.get("/api/schema", headers={"Accept": "application/json"})
    assert r.status_code == 200
    schema = json.loads(r.content)
    paths = set(schema["paths"])
    assert {
        "/api/v1/generate",
        "/api/v1/outputs/{output_id}",
        "/api/v1/feedback",
        "/api/v1/feedback/bulk",
    } <= paths
    for path in ("/api/v1/generate", "/api/v1/feedback", "/api/v1/feedback/bulk"):
        content = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert content.get("examples"), path
    assert client.get("/api/docs").status_code == 200
