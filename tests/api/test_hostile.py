"""Hostile and careless input: each answers the documented JSON error and writes nothing.

Every error body is ``{"error": {"code", "message", ...}}`` (cogloop/api.py); a bulk reports a
bad item in its own result and writes the rest.
"""

import base64
import json
import threading

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from feedback.models import Feedback
from inference import services, serving
from inference.models import Output

GOOD = "Step 1 [deduction]: 3 + 4 = 7\n</think>\n\nThe answer is 7."
PROMPT = "Start with 3. Add 4. What is the result?"


def post(client, path, body, key, raw=False, **headers):
    return client.post(
        path,
        data=body if raw else json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}", **headers},
    )


def error_of(response, status: int) -> dict:
    """The response's error object, after checking its status and the documented shape."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str) and error["message"]
    return error


@pytest.fixture
def output(product_app):
    return services.output_create(app=product_app, prompt=PROMPT, raw_text=GOOD)


# -- 1. one poisoned bulk item, and identical bulks at once ---------------------------------


@pytest.mark.parametrize("poison", ["\u0000", "\ud800"], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize("field", ["comment", "flags", "idempotency_key"])
def test_a_poisoned_bulk_item_gets_its_own_error_and_the_rest_are_created(
    api_client, api_key, output, field, poison
):
    value = [f"a{poison}b"] if field == "flags" else f"a{poison}b"
    items = [
        {"output_id": str(output.uuid), "rating": 4, "idempotency_key": "fine-1"},
        {"output_id": str(output.uuid), "rating": 2, field: value},
        {"output_id": str(output.uuid), "thumb": "up"},
    ]
    single = post(api_client, "/api/v1/feedback", items[1], api_key)
    assert error_of(single, 400)["fields"].keys() == {field}
    r = post(api_client, "/api/v1/feedback/bulk", {"items": items}, api_key)
    assert r.status_code == 200, r.content[:500]
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["created", "error", "created"]
    assert set(results[1]["errors"]) == {field}
    assert Feedback.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_identical_bulks_at_once_each_answer_200_with_every_item_created_once(product_app, api_key):
    outputs = [
        services.output_create(app=product_app, prompt=f"{PROMPT} #{i}", raw_text=GOOD) for i in range(5)
    ]
    items = [
        {"output_id": str(outputs[i % 5].uuid), "rating": 1 + i % 5, "idempotency_key": f"same-{i}"}
        for i in range(40)
    ]
    body = json.dumps({"items": items})
    clients, barrier, answers = 8, threading.Barrier(8), []

    def send():
        try:
            barrier.wait()
            answers.append(
                post(Client(raise_request_exception=False), "/api/v1/feedback/bulk", body, api_key, raw=True)
            )
        finally:
            connection.close()  # each thread has its own connection: give it back

    threads = [threading.Thread(target=send) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * clients, [a.content[:300] for a in answers]
    per_item = list(zip(*[a.json()["results"] for a in answers]))
    for results in per_item:
        assert {x["status"] for x in results} <= {"created", "replayed"}, results
        assert sum(x["status"] == "created" for x in results) == 1, results
        assert len({x["id"] for x in results}) == 1, results  # every answer names the one row
    assert Feedback.objects.count() == 40


@pytest.mark.parametrize("path", ["/api/v1/generate", "/api/v1/outputs"])
@pytest.mark.parametrize("poison", ["\u0000", "\ud800"], ids=["nul", "lone-surrogate"])
def test_a_poisoned_prompt_is_a_400_naming_it(api_client, api_key, path, poison):
    body = {"prompt": f"Start with 3.{poison} Add 4.", "text": GOOD}
    if path == "/api/v1/generate":
        del body["text"]
    assert "prompt" in error_of(post(api_client, path, body, api_key), 400)["fields"]
    assert Output.objects.count() == 0


# -- 2. an idempotency key with another body is a 409 ---------------------------------------


def test_an_outputs_key_with_another_body_is_409_and_writes_nothing(api_client, api_key):
    key = {"Idempotency-Key": "ext-1"}
    first = post(api_client, "/api/v1/outputs", {"prompt": PROMPT, "text": GOOD}, api_key, **key)
    assert first.status_code == 201
    again = post(api_client, "/api/v1/outputs", {"prompt": PROMPT, "text": GOOD}, api_key, **key)
    assert again.status_code in (200, 201) and again.json()["id"] == first.json()["id"]
    other = post(api_client, "/api/v1/outputs", {"prompt": "Start with 9.", "text": GOOD}, api_key, **key)
    assert error_of(other, 409)["code"] == "idempotency_key_reused"
    assert Output.objects.count() == 1


def test_a_generate_key_with_another_body_is_409_before_the_model_runs(api_client, api_key, monkeypatch):
    services.model_version_ensure_base()
    key = {"Idempotency-Key": "gen-1"}
    first = post(api_client, "/api/v1/generate", {"prompt": PROMPT}, api_key, **key)
    assert first.status_code == 201
    ran = []
    monkeypatch.setattr(serving, "generate", lambda *a, **k: ran.append(a) or pytest.fail("model ran"))
    other = post(api_client, "/api/v1/generate", {"prompt": "Start with 9. Add 1."}, api_key, **key)
    assert error_of(other, 409)["code"] == "idempotency_key_reused"
    hotter = post(api_client, "/api/v1/generate", {"prompt": PROMPT, "temperature": 1.0}, api_key, **key)
    assert error_of(hotter, 409)["code"] == "idempotency_key_reused"
    again = post(api_client, "/api/v1/generate", {"prompt": PROMPT}, api_key, **key)
    assert again.json()["id"] == first.json()["id"]
    assert ran == [] and Output.objects.count() == 1


# -- 3. every rejection is the documented JSON error ----------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/generate", "/api/v1/outputs", "/api/v1/feedback"])
def test_an_idempotency_key_header_over_200_characters_is_a_400_before_anything_runs(
    api_client, api_key, output, monkeypatch, path
):
    services.model_version_ensure_base()
    monkeypatch.setattr(serving, "generate", lambda *a, **k: pytest.fail("the model ran"))
    body = {"output_id": str(output.uuid), "rating": 3} if "feedback" in path else {"prompt": PROMPT}
    if path == "/api/v1/outputs":
        body["text"] = GOOD
    before = (Output.objects.count(), Feedback.objects.count())
    r = post(api_client, path, body, api_key, **{"Idempotency-Key": "k" * 201})
    assert "Idempotency-Key" in error_of(r, 400)["fields"]
    assert (Output.objects.count(), Feedback.objects.count()) == before


@pytest.mark.parametrize("depth", [50_000, 990])
def test_json_nested_absurdly_deep_is_a_400(api_client, api_key, depth):
    for path in ("/api/v1/generate", "/api/v1/feedback", "/api/v1/feedback/bulk"):
        deep = "[" * depth + "]" * depth
        r = post(api_client, path, '{"items": [{"thumb": ' + deep + "}]}", api_key, raw=True)
        assert error_of(r, 400)["code"] in ("malformed_json", "validation_error"), path
    assert Output.objects.count() == 0 and Feedback.objects.count() == 0


@pytest.mark.parametrize(
    "cursor",
    [
        base64.b64encode(b"p=not-a-number").decode(),
        base64.b64encode(b"p=1e999&r=1").decode(),
        base64.b64encode(b"o=-1&p=5").decode(),
        "%%%not-base64",
    ],
)
def test_a_tampered_pagination_cursor_is_a_400(api_client, api_key, output, cursor):
    r = api_client.get("/api/v1/outputs", {"cursor": cursor}, headers={"Authorization": f"Bearer {api_key}"})
    assert error_of(r, 400)["code"] == "invalid_cursor"


def test_a_bulk_at_the_documented_limits_fits_and_a_bigger_body_is_a_json_413(api_client, api_key, output):
    limit = settings.FEEDBACK_BULK_MAX_ITEMS
    item = {
        "output_id": str(output.uuid),
        "rating": 3,
        "comment": "é" * settings.FEEDBACK_MAX_COMMENT_CHARS,
        "flags": [f"{i:02d}" + "f" * 48 for i in range(20)],
    }
    items = [{**item, "idempotency_key": f"{i:04d}" + "k" * 196} for i in range(limit)]
    body = json.dumps({"items": items}, ensure_ascii=False)
    assert len(body.encode()) > 2_621_440  # over Django's default upload limit
    r = post(api_client, "/api/v1/feedback/bulk", body, api_key, raw=True)
    assert r.status_code == 200 and r.json()["created"] == limit, r.content[:300]
    Feedback.objects.all().delete()
    too_big = " " * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1) + "{}"
    for path in ("/api/v1/feedback/bulk", "/api/v1/feedback", "/api/v1/generate"):
        error = error_of(post(api_client, path, too_big, api_key, raw=True), 413)
        assert error["code"] == "request_too_large" and error["limit"] == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert Feedback.objects.count() == 0


def test_an_unknown_api_route_is_a_json_404(api_client, api_key):
    for path in ("/api/v1/nothing-here", "/api/v2/generate", "/api/"):
        r = api_client.get(path, headers={"Authorization": f"Bearer {api_key}"})
        assert error_of(r, 404)["code"] == "not_found"


def test_an_apps_key_on_a_staff_endpoint_is_told_keys_are_not_allowed_there(api_client, api_key):
    version = services.model_version_ensure_base()
    r = api_client.post(
        f"/api/v1/models/{version.pk}/promote", headers={"Authorization": f"Bearer {api_key}"}
    )
    error = error_of(r, 403)
    assert error["code"] == "api_key_not_allowed" and "not allowed" in error["message"]
    assert "credentials were not provided" not in error["message"]


def test_an_unexpected_failure_under_api_is_a_json_500_that_writes_nothing(api_key, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(services, "output_create", broken)
    client = APIClient(raise_request_exception=False)
    r = post(client, "/api/v1/outputs", {"prompt": PROMPT, "text": GOOD}, api_key)
    error = error_of(r, 500)
    assert error["code"] == "server_error" and "a bug" not in error["message"]
    assert Output.objects.count() == 0


def test_the_schema_lists_the_error_responses(client, db):
    schema = json.loads(client.get("/api/schema", headers={"Accept": "application/json"}).content)
    expected = {
        ("/api/v1/generate", "post"): {"400", "401", "409", "413", "429"},
        ("/api/v1/outputs", "post"): {"400", "401", "409", "413", "429"},
        ("/api/v1/outputs", "get"): {"400", "401", "429"},
        ("/api/v1/outputs/{output_id}", "get"): {"401", "404", "429"},
        ("/api/v1/feedback", "post"): {"400", "401", "404", "409", "413", "429"},
        ("/api/v1/feedback/bulk", "post"): {"400", "401", "413", "429"},
        ("/api/v1/models/{version_id}/promote", "post"): {"401", "403", "404", "409", "429"},
    }
    for (path, method), statuses in expected.items():
        responses = schema["paths"][path][method]["responses"]
        assert statuses <= set(responses), (path, method, sorted(responses))
        for status in statuses:
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error", (path, method, status)
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]


# -- 4. invented HTTP methods do not grow /metrics ------------------------------------------


def _request_series() -> set[tuple]:
    return {
        tuple(sorted(sample.labels.items()))
        for metric in REGISTRY.collect()
        if metric.name == "cogloop_http_request_seconds"
        for sample in metric.samples
        if sample.name.endswith("_count")
    }


def test_fifty_invented_methods_add_at_most_one_metrics_series(client, db):
    before = _request_series()
    for i in range(50):
        client.generic(f"FOO{i}", "/")
    assert len(_request_series() - before) <= 1
    assert any(dict(s).get("method") == "other" for s in _request_series())


# -- 5. guessing passwords ------------------------------------------------------------------


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="stella", password="staff-pass-1", is_staff=True)


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_guessing_a_password_on_the_login_forms_locks_the_user_out(client, staff, path):
    for i in range(30):
        client.post(path, {"username": "stella", "password": f"guess-{i}"})
    r = client.post(path, {"username": "stella", "password": "staff-pass-1"})
    assert r.status_code == 429
    assert "_auth_user_id" not in client.session
    page = r.content.decode()
    assert "<html" in page.lower() and "too many failed" in page.lower()
    other = Client(REMOTE_ADDR="10.0.0.9")  # the lock is this username from this address
    assert other.post(path, {"username": "stella", "password": "staff-pass-1"}).status_code == 302


def test_guessing_a_password_over_basic_auth_locks_the_user_out_with_a_json_429(client, staff):
    version = services.model_version_ensure_base()
    url = f"/api/v1/models/{version.pk}/rollback"

    def basic(password):
        token = base64.b64encode(f"stella:{password}".encode()).decode()
        return client.post(url, headers={"Authorization": f"Basic {token}"})

    assert basic("staff-pass-1").status_code == 409  # the right password works (nothing to roll back)
    for i in range(30):
        basic(f"guess-{i}")
    error = error_of(basic("staff-pass-1"), 429)
    assert error["code"] == "locked_out" and "failed" in error["message"]


# -- 6. a strict Content-Security-Policy on every page ---------------------------------------


def test_html_pages_carry_a_strict_csp(client, staff):
    client.force_login(staff)
    for path in ("/accounts/login/", "/dashboards/", "/api/docs"):
        r = client.get(path)
        assert r.status_code == 200, path
        policy = r["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, policy
