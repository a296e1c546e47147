import json

import pytest

from inference.models import Output

GENERATE = "/api/v1/generate"


def post(client, body, key=None, raw=False):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = body if raw else json.dumps(body)
    return client.post(GENERATE, data=data, content_type="application/json", headers=headers)


@pytest.mark.django_db
class TestRejectedRequestsWriteNothing:
    def test_missing_key_is_401(self, api_client):
        r = post(api_client, {"prompt": "Start with 3. Add 4. What is the result?"})
        assert r.status_code == 401

    def test_invalid_key_is_401(self, api_client, api_key):
        r = post(api_client, {"prompt": "x"}, key=api_key[:-2] + "zz")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "authentication_failed"

    def test_revoked_key_is_401(self, api_client, api_key):
        from django.utils import timezone

        from inference.models import ApiKey

        ApiKey.objects.update(revoked_at=timezone.now())
        assert post(api_client, {"prompt": "x"}, key=api_key).status_code == 401

    def test_malformed_json_is_400(self, api_client, api_key):
        r = post(api_client, '{"prompt": ', key=api_key, raw=True)
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "malformed_json"

    @pytest.mark.parametrize(
        "body, field",
        [
            ({}, "prompt"),
            ({"prompt": ""}, "prompt"),
            ({"prompt": "   "}, "prompt"),
            ({"prompt": 12}, "prompt"),
            (["a list"], "non_field_errors"),
            ({"prompt": "ok", "max_new_tokens": -1}, "max_new_tokens"),
            ({"prompt": "ok", "max_new_tokens": 100000}, "max_new_tokens"),
            ({"prompt": "ok", "temperature": 5}, "temperature"),
            ({"prompt": "ok", "temperature": "hot"}, "temperature"),
            ({"prompt": "ok", "n": 0}, "n"),
            ({"prompt": "ok", "n": 17}, "n"),
            ({"prompt": "ok", "n": "many"}, "n"),
            ({"prompt": "ok", "n": 3, "temperature": 0}, "temperature"),
        ],
    )
    def test_field_errors_are_400_and_named(self, api_client, api_key, body, field):
        r = post(api_client, body, key=api_key)
        assert r.status_code == 400, r.content
        error = r.json()["error"]
        assert error["code"] == "validation_error"
        if field:
            assert field in error["fields"]

    def test_over_long_prompt_names_the_limit(self, api_client, api_key, settings):
        settings.COGLOOP = {**settings.COGLOOP, "MAX_PROMPT_CHARS": 50}
        r = post(api_client, {"prompt": "x" * 51}, key=api_key)
        assert r.status_code == 413
        assert r.json()["error"]["limit"] == 50
        assert "50" in r.json()["error"]["message"]

    def teardown_method(self):
        assert Output.objects.count() == 0


@pytest.mark.django_db
def test_generate_scores_and_stores_an_output(api_client, api_key, other_api_key):
    from inference.services import model_version_ensure_base

    base = model_version_ensure_base()
    r = post(api_client, {"prompt": "Start with 40. Add 5. Subtract 3. What is the result?"}, key=api_key)
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["model_version"] == base.name
    assert body["steps"] and all(
        {"text", "strategy", "wrong", "predicted_strategy"} <= set(s) for s in body["steps"]
    )
    assert 0.0 <= body["cognition_score"] <= 1.0
    assert body["head_confidence"] is None  # no trained metacognition head yet: absent, not a number
    assert 0.0 < body["model_confidence"] <= 1.0  # the answer tokens' own probability
    output = Output.objects.get(uuid=body["id"])
    assert output.raw_text and output.model_version == base

    own = api_client.get(f"/api/v1/outputs/{body['id']}", headers={"Authorization": f"Bearer {api_key}"})
    assert own.status_code == 200 and own.json()["id"] == body["id"]
    other = api_client.get(
        f"/api/v1/outputs/{body['id']}", headers={"Authorization": f"Bearer {other_api_key}"}
    )
    assert other.status_code == 404


@pytest.mark.django_db
def test_idempotency_key_replays_the_first_output(api_client, api_key):
    from inference.services import model_version_ensure_base

    model_version_ensure_base()
    prompt = {"prompt": "Start with 20. Add 1. What is the result?"}
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": "abc"}
    first = api_client.post(
        GENERATE, data=json.dumps(prompt), content_type="application/json", headers=headers
    )
    again = api_client.post(
        GENERATE, data=json.dumps(prompt), content_type="application/json", headers=headers
    )
    assert first.json()["id"] == again.json()["id"]
    assert Output.objects.count() == 1


@pytest.mark.django_db
def test_output_list_is_scoped_paginated_and_constant_in_queries(
    api_client, api_key, other_api_key, product_app, django_assert_max_num_queries
):
    from inference.models import ProductApp
    from inference.services import output_create

    other = ProductApp.objects.get(name="other")
    text = "Step 1 [deduction]: 1 + 1 = 2\n</think>\n\nThe answer is 2."
    mine = [output_create(app=product_app, prompt=f"p{i}", raw_text=text) for i in range(7)]
    output_create(app=other, prompt="theirs", raw_text=text)
    headers = {"Authorization": f"Bearer {api_key}"}
    with django_assert_max_num_queries(4):  # key, page, (no per-row queries)
        page = api_client.get("/api/v1/outputs?page_size=5", headers=headers).json()
    assert [o["id"] for o in page["results"]] == [str(o.uuid) for o in reversed(mine)][:5]
    rest = api_client.get(page["next"], headers=headers).json()
    assert len(rest["results"]) == 2 and rest["next"] is None
    theirs = api_client.get("/api/v1/outputs", headers={"Authorization": f"Bearer {other_api_key}"}).json()
    assert [o["prompt"] for o in theirs["results"]] == ["theirs"]


@pytest.mark.django_db
def test_api_key_command_creates_shows_once_and_revokes(api_client):
    from io import StringIO

    from django.core.management import call_command

    from inference.models import ApiKey

    out = StringIO()
    call_command("apikey", "create", "cli-app", stdout=out)
    key = out.getvalue().strip()
    assert key.startswith("cl_") and key not in str(list(ApiKey.objects.values()))
    headers = {"Authorization": f"Bearer {key}"}
    assert api_client.get("/api/v1/outputs", headers=headers).status_code == 200
    call_command("apikey", "revoke", key.split(".")[0], stdout=StringIO())
    assert api_client.get("/api/v1/outputs", headers=headers).status_code == 401


@pytest.mark.django_db
def test_n_samples_come_back_as_a_group_with_its_majority(api_client, api_key):
    import torch

    from inference.services import model_version_ensure_base

    base = model_version_ensure_base()
    torch.manual_seed(0)
    prompt = "Start with 40. Add 5. Subtract 3. What is the result?"
    r = post(api_client, {"prompt": prompt, "n": 3}, key=api_key)
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["n"] == 3 and body["prompt"] == prompt and body["model_version"] == base.name
    outputs = body["outputs"]
    assert len(outputs) == 3 and all({"id", "text", "answer", "cognition_score"} <= set(o) for o in outputs)
    # the tiny model is sure of this sum even when sampling: its answers agree
    assert body["majority_answer"] is not None
    assert all(o["is_majority"] for o in outputs if o["agreement"] == 1.0)
    assert all(o["model_confidence"] is not None and 0 < o["model_confidence"] <= 1 for o in outputs)
    stored = Output.objects.filter(sample_group=body["sample_group"]).order_by("id")
    assert [str(o.uuid) for o in stored] == [o["id"] for o in outputs]
    assert {o.model_version_id for o in stored} == {base.pk}


@pytest.mark.django_db
def test_the_default_n_samples_unless_the_request_asks_for_greedy(api_client, api_key, settings):
    from inference.services import model_version_ensure_base

    model_version_ensure_base()
    settings.COGLOOP = {**settings.COGLOOP, "GENERATE_DEFAULT_N": 2}
    prompt = "Start with 20. Add 1. What is the result?"
    grouped = post(api_client, {"prompt": prompt, "max_new_tokens": 24}, key=api_key).json()
    assert grouped["n"] == 2 and len(grouped["outputs"]) == 2
    greedy = post(api_client, {"prompt": prompt, "max_new_tokens": 24, "temperature": 0}, key=api_key).json()
    assert "outputs" not in greedy and greedy["sample_group"] is None


@pytest.mark.django_db
def test_idempotency_key_replays_the_first_group(api_client, api_key):
    from inference.services import model_version_ensure_base

    model_version_ensure_base()
    body = json.dumps({"prompt": "Start with 20. Add 1. What is the result?", "n": 2, "max_new_tokens": 24})
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": "two"}
    first = api_client.post(GENERATE, data=body, content_type="application/json", headers=headers)
    again = api_client.post(GENERATE, data=body, content_type="application/json", headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["sample_group"] == first.json()["sample_group"]
    assert [o["id"] for o in again.json()["outputs"]] == [o["id"] for o in first.json()["outputs"]]
    assert Output.objects.count() == 2
