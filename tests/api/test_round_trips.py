"""Round trips of the write API's hot paths, pinned: database queries (CaptureQueriesContext)
and Redis calls per request, and the bounds of what a process caches (API keys, the capture
policy). docs/benchmarks.md has the figures these pin, before and after."""

import json

import pytest
import redis.client
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cogloop.models import OutboxMessage
from feedback import services as feedback_services
from feedback.models import CapturePolicy, Feedback, ReviewItem
from inference import services as inference_services
from inference.models import ApiKey, Output

GOOD = "Step 1 [deduction]: 3 + 4 = 7\n</think>\n\nThe answer is 7."
BAD = "Step 1 [deduction]: 42 - 8 = 50\n</think>\n\nThe answer is 50."

# Transactions as served: a savepoint inside a test's own transaction would count as queries.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _policy_cached_as_served(settings):
    settings.CAPTURE_POLICY_CACHE_S = 3600.0  # tests elsewhere read it afresh (django_fixtures)


def post(client, key, path, body, **headers):
    return client.post(
        path,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}", **headers},
    )


@pytest.fixture
def outputs(product_app):
    return [
        inference_services.output_create(app=product_app, prompt=f"Start with {i}. Add 4.", raw_text=GOOD)
        for i in range(120)
    ]


@pytest.fixture
def warm(api_client, api_key, outputs):
    """One request first: the key is read and cached, as on a serving process."""
    assert (
        post(
            api_client, api_key, "/api/v1/feedback", {"output_id": str(outputs[0].uuid), "rating": 5}
        ).status_code
        == 201
    )


@pytest.fixture
def redis_calls(monkeypatch):
    """Counts round trips to Redis: single commands and pipelines (one round trip each)."""
    calls = []
    command, execute = redis.client.Redis.execute_command, redis.client.Pipeline.execute

    def counted_command(self, *args, **kwargs):
        calls.append(args[0])
        return command(self, *args, **kwargs)

    def counted_pipeline(self, *args, **kwargs):
        calls.append("pipeline")
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Redis, "execute_command", counted_command)
    monkeypatch.setattr(redis.client.Pipeline, "execute", counted_pipeline)
    return calls


def test_a_feedback_is_one_query_and_one_redis_round_trip(api_client, api_key, outputs, warm, redis_calls):
    with CaptureQueriesContext(connection) as queries:
        r = post(
            api_client,
            api_key,
            "/api/v1/feedback",
            {"output_id": str(outputs[1].uuid), "rating": 2, "flags": ["slow"], "idempotency_key": "q-1"},
        )
    assert r.status_code == 201, r.content
    assert len(queries) == 1, [q["sql"][:80] for q in queries.captured_queries]
    assert redis_calls == ["pipeline"]  # the throttle's counters; nothing is published
    fb = Feedback.objects.get(idempotency_key="q-1")
    assert r.json() == {
        "id": fb.pk,
        "output_id": str(outputs[1].uuid),
        "rating": 2,
        "thumb": None,
        "comment": "",
        "flags": ["slow"],
        "created_at": r.json()["created_at"],
    }
    assert OutboxMessage.objects.filter(payload={"feedback_ids": [fb.pk]}, sent_at__isnull=True).count() == 1


def test_a_feedback_replay_is_two_queries_and_a_missing_output_three(api_client, api_key, outputs, warm):
    body = {"output_id": str(outputs[1].uuid), "rating": 4}
    assert (
        post(api_client, api_key, "/api/v1/feedback", body, **{"Idempotency-Key": "q-2"}).status_code == 201
    )
    with CaptureQueriesContext(connection) as replay:
        r = post(api_client, api_key, "/api/v1/feedback", body, **{"Idempotency-Key": "q-2"})
    assert r.status_code == 200 and r["Idempotent-Replayed"] == "true"
    with CaptureQueriesContext(connection) as missing:
        r = post(
            api_client,
            api_key,
            "/api/v1/feedback",
            {"output_id": "3f0c7f0e-8a55-4c1b-9f43-2f6a1f1d2b7e", "rating": 4},
            **{"Idempotency-Key": "q-3"},
        )
    assert r.status_code == 404
    # replay: the insert that inserted nothing, the key's row (and its output for the answer)
    assert len(replay) <= 3 and len(missing) == 3
    assert Feedback.objects.filter(idempotency_key__in=["q-2", "q-3"]).count() == 1


def test_an_output_is_one_query_when_nothing_is_captured(api_client, api_key, warm, redis_calls):
    with CaptureQueriesContext(connection) as queries:
        r = post(
            api_client,
            api_key,
            "/api/v1/outputs",
            {"prompt": "Start with 3. Add 4. What is the result?", "text": GOOD, "idempotency_key": "o-1"},
        )
    assert r.status_code == 201, r.content
    # the insert in its transaction, with the output-created hooks (the policy is cached)
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["BEGIN", "INSERT", "COMMIT"]
    assert redis_calls == ["pipeline"]


def test_a_low_score_output_adds_only_its_queueing(api_client, api_key, warm):
    with CaptureQueriesContext(connection) as queries:
        r = post(api_client, api_key, "/api/v1/outputs", {"prompt": "Start with 42. Take 8.", "text": BAD})
    assert r.status_code == 201
    # the output, the near-duplicate check, the review item
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    assert statements == ["BEGIN", "INSERT", "SELECT", "INSERT", "COMMIT"], statements
    assert ReviewItem.objects.get().reason == ReviewItem.Reason.LOW_SCORE


def test_an_output_replay_is_found_by_its_insert(api_client, api_key, warm):
    body = {"prompt": "Start with 3. Add 4. What is the result?", "text": GOOD, "idempotency_key": "o-2"}
    first = post(api_client, api_key, "/api/v1/outputs", body)
    again = post(api_client, api_key, "/api/v1/outputs", body)
    other = post(api_client, api_key, "/api/v1/outputs", {**body, "text": BAD})
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert Output.objects.filter(idempotency_key="o-2").count() == 1


def test_a_bulk_costs_the_same_queries_for_10_or_100_items(api_client, api_key, outputs, warm):
    def bulk(items):
        with CaptureQueriesContext(connection) as queries:
            r = post(api_client, api_key, "/api/v1/feedback/bulk", {"items": items})
        assert r.status_code == 200 and r.json()["created"] == len(items)
        return len(queries)

    small = bulk(
        [{"output_id": str(o.uuid), "rating": 5, "idempotency_key": f"s{o.pk}"} for o in outputs[:10]]
    )
    large = bulk(
        [{"output_id": str(o.uuid), "rating": 5, "idempotency_key": f"l{o.pk}"} for o in outputs[:100]]
    )
    # BEGIN, one lookup (earlier keys, outputs, new ids), the outbox rows, COMMIT (the COPY
    # goes past Django's query log)
    assert small == large == 4
    sizes = sorted(len(m.payload["feedback_ids"]) for m in OutboxMessage.objects.all())
    assert sizes == [1, 10, 50, 50]  # the warm-up's, the small bulk's, the large one's two


# -- what a process caches, and for how long ---------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """The caches' clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(inference_services, "_clock", lambda: now[0])
    monkeypatch.setattr(feedback_services, "_clock", lambda: now[0])
    return now


def test_a_key_revoked_elsewhere_stops_working_within_the_cache_bound(
    api_client, api_key, outputs, clock, settings
):
    settings.API_KEY_CACHE_S = 5.0

    def status():
        return post(
            api_client, api_key, "/api/v1/feedback", {"output_id": str(outputs[0].uuid), "rating": 5}
        ).status_code

    assert status() == 201
    ApiKey.objects.update(revoked_at=timezone.now())  # as another process's revocation looks here
    clock[0] += 4.9
    assert status() == 201  # this process still trusts its copy, at most API_KEY_CACHE_S
    clock[0] += 0.1
    assert status() == 401


def test_a_key_revoked_in_this_process_stops_working_at_once(api_client, api_key, outputs, clock):
    def status():
        return post(
            api_client, api_key, "/api/v1/feedback", {"output_id": str(outputs[0].uuid), "rating": 5}
        ).status_code

    assert status() == 201
    inference_services.api_key_revoke(prefix=api_key[3:].split(".")[0])
    assert status() == 401


def test_a_wrong_secret_is_refused_while_its_prefix_is_cached(api_client, api_key, outputs, warm):
    forged = api_key.split(".")[0] + ".not-the-secret"
    r = post(api_client, forged, "/api/v1/feedback", {"output_id": str(outputs[0].uuid), "rating": 5})
    assert r.status_code == 401


def test_the_capture_policy_is_read_once_per_bound_and_at_once_after_an_edit(product_app, clock, settings):
    settings.CAPTURE_POLICY_CACHE_S = 5.0
    policy = feedback_services.capture_policy_cached()
    CapturePolicy.objects.update(score_below=0.9)  # as an edit in another process looks here
    with CaptureQueriesContext(connection) as queries:
        assert feedback_services.capture_policy_cached().score_below == policy.score_below
    assert len(queries) == 0
    clock[0] += 5.0
    assert feedback_services.capture_policy_cached().score_below == 0.9
    policy = CapturePolicy.objects.get()
    policy.score_below = 0.3
    feedback_services.capture_policy_update(policy=policy, fields=["score_below"])
    assert feedback_services.capture_policy_cached().score_below == 0.3


def test_the_feedback_answer_is_what_its_documented_serializer_gives(api_client, api_key, outputs, warm):
    from feedback.api import FeedbackOutputSerializer

    body = {"output_id": str(outputs[2].uuid), "thumb": "down", "comment": "x", "idempotency_key": "b-1"}
    created = post(api_client, api_key, "/api/v1/feedback", body).json()
    replayed = post(api_client, api_key, "/api/v1/feedback", body).json()
    expected = json.loads(
        json.dumps(FeedbackOutputSerializer(Feedback.objects.get(idempotency_key="b-1")).data)
    )
    assert created == replayed == expected


def test_the_output_answer_is_what_its_documented_serializer_gives(api_client, api_key, warm):
    from inference.api import OutputSerializer

    version = inference_services.model_version_ensure_base()
    bodies = [
        {"prompt": "Start with 3. Add 4.", "text": GOOD, "idempotency_key": "p-1"},
        {"prompt": "Start with 42. Take 8.", "text": BAD, "model_version": version.name},
        {
            "prompt": "Start with 40. Take away 7.",
            "text": "40 - 7 = 33\n</think>\n\nThe answer is 33.",
            "logprobs": {"content": [{"token": "33", "logprob": -0.3}]},
        },
    ]
    for body in bodies:
        answer = post(api_client, api_key, "/api/v1/outputs", body).json()
        stored = Output.objects.select_related("model_version").get(uuid=answer["id"])
        assert answer == json.loads(json.dumps(OutputSerializer(stored).data))
    replayed = post(api_client, api_key, "/api/v1/outputs", bodies[0]).json()
    assert replayed == json.loads(
        json.dumps(OutputSerializer(Output.objects.get(idempotency_key="p-1")).data)
    )
