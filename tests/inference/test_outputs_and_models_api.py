import json
import threading
import time

import pytest

from feedback.models import ReviewItem
from inference import services, serving
from inference.models import ModelVersion, Output

WRONG = "Step 1 [deduction]: 42 - 8 = 50\n</think>\n\nThe answer is 50."


def post(client, path, body, key):
    return client.post(
        path,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def test_external_output_is_scored_and_captured_like_a_generated_one(api_client, api_key):
    r = post(
        api_client,
        "/api/v1/outputs",
        {"prompt": "Start with 42. Take away 8. What is the result?", "text": WRONG},
        api_key,
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["steps"][0]["wrong"] is True and body["cognition_score"] < 0.6
    output = Output.objects.get(uuid=body["id"])
    assert output.source == Output.Source.EXTERNAL and output.model_version is None
    assert ReviewItem.objects.get(output=output).reason == ReviewItem.Reason.LOW_SCORE


@pytest.mark.parametrize(
    "body, field",
    [
        ({"prompt": "p"}, "text"),
        ({"text": "t"}, "prompt"),
        ({"prompt": "p", "text": 3}, "text"),
        ({"prompt": "", "text": "t"}, "prompt"),
    ],
)
def test_external_output_bad_input_names_the_field(api_client, api_key, body, field):
    r = post(api_client, "/api/v1/outputs", body, api_key)
    assert r.status_code == 400 and field in r.json()["error"]["fields"]
    assert Output.objects.count() == 0


def test_another_apps_output_is_404(api_client, api_key, other_api_key):
    r = post(api_client, "/api/v1/outputs", {"prompt": "p", "text": WRONG}, api_key)
    other = api_client.get(
        f"/api/v1/outputs/{r.json()['id']}", headers={"Authorization": f"Bearer {other_api_key}"}
    )
    assert other.status_code == 404


@pytest.fixture
def two_versions(db):
    base = services.model_version_ensure_base()
    copy = services.model_version_register(
        name="copy", source_dir=services.store_path(base.weights_path), base_model_path=base.base_model_path
    )
    return base, copy


def test_promote_and_rollback_are_admin_only(client, django_user_model, reviewer, two_versions):
    base, copy = two_versions
    assert client.post(f"/api/v1/models/{copy.pk}/promote").status_code in (401, 403)
    client.force_login(reviewer)
    assert client.post(f"/api/v1/models/{copy.pk}/promote").status_code == 403
    admin = django_user_model.objects.create_superuser(username="boss", password="boss-pass-1")
    client.force_login(admin)
    r = client.post(f"/api/v1/models/{copy.pk}/promote")
    assert r.status_code == 200 and r.json()["status"] == "active"
    r = client.post(f"/api/v1/models/{copy.pk}/rollback")
    assert r.status_code == 200 and r.json()["name"] == base.name
    base.refresh_from_db()
    copy.refresh_from_db()
    assert (base.status, copy.status) == ("active", "retired")
    again = client.post(f"/api/v1/models/{copy.pk}/rollback")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_active"


@pytest.mark.worker
def test_swap_under_concurrent_load_fails_no_request(transactional_db, api_key):
    """Clients keep generating through the API while a promotion is swapped in."""
    from django.test import Client

    base = services.model_version_ensure_base()
    candidate = services.model_version_register(
        name="candidate",
        source_dir=services.store_path(base.weights_path),
        base_model_path=base.base_model_path,
    )
    serving.sync_with_registry()
    statuses, versions, stop = [], [], threading.Event()

    def client_loop(n):
        from django.db import connection

        c = Client()
        i = 0
        try:
            _generate_until_stopped(c, n, i)
        finally:
            connection.close()

    def _generate_until_stopped(c, n, i):
        while not stop.is_set():
            r = c.post(
                "/api/v1/generate",
                {
                    "prompt": f"Start with {10 + n}. Add {i % 9 + 1}. What is the result?",
                    "max_new_tokens": 24,
                },
                content_type="application/json",
                headers={"Authorization": f"Bearer {api_key}"},
            )
            statuses.append(r.status_code)
            if r.status_code == 201:
                versions.append(r.json()["model_version"])
            i += 1

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    services.model_version_promote(version=candidate, reason="swap under load")
    assert serving.sync_with_registry() == candidate.pk  # load, verify, smoke, swap while clients run
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    assert statuses and set(statuses) == {201}, f"failed requests: {[s for s in statuses if s != 201]}"
    assert versions[0] == base.name and versions[-1] == "candidate"
    assert Output.objects.count() == len(statuses)
    assert set(Output.objects.values_list("model_version__name", flat=True)) == {base.name, "candidate"}
    assert ModelVersion.objects.get(name="candidate").status == "active"


PEN = "A pen costs $6. How much do 3 pens cost?"
EIGHTEEN = [
    "Step 1 [deduction]: 3 * 6 = 18\n</think>\n\nThe answer is $18.00.",
    "Step 1 [deduction]: 6 + 6 + 6 = 18\n</think>\n\n\\boxed{18}",
    "Step 1 [deduction]: 3 * 6 = 18\n</think>\n\nThey cost 18 dollars.",
]
TWENTY_FOUR = "Step 1 [deduction]: 3 * 8 = 24\n</think>\n\nThe answer is 24."


def test_samples_are_stored_as_one_group_each_scored_with_its_agreement(api_client, api_key):
    r = post(api_client, "/api/v1/outputs", {"prompt": PEN, "samples": [*EIGHTEEN, TWENTY_FOUR]}, api_key)
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["n"] == 4 and body["prompt"] == PEN and body["majority_answer"] == "18"
    outputs = body["outputs"]
    assert [o["agreement"] for o in outputs] == [pytest.approx(2 / 3)] * 3 + [0.0]
    assert [o["is_majority"] for o in outputs] == [True, True, True, False]
    assert [o["text"] for o in outputs] == [*EIGHTEEN, TWENTY_FOUR]
    stored = list(Output.objects.order_by("id"))
    assert [str(o.uuid) for o in stored] == [o["id"] for o in outputs]
    assert {str(o.sample_group) for o in stored} == {body["sample_group"]}
    assert all(o.source == Output.Source.EXTERNAL for o in stored)
    # The disagreeing sample's own arithmetic is right; only the group's disagreement lowers it.
    alone = services.output_create(app=stored[0].app, prompt=PEN, raw_text=TWENTY_FOUR)
    assert stored[3].consistency == pytest.approx(0.5 * alone.consistency)
    assert stored[0].consistency == pytest.approx(alone.consistency * (0.5 + 0.5 * 2 / 3), abs=1e-4)
    assert stored[3].score_parts["agreement"] == 0.0 and alone.score_parts.get("agreement") is None
    detail = api_client.get(
        f"/api/v1/outputs/{outputs[3]['id']}", headers={"Authorization": f"Bearer {api_key}"}
    )
    assert detail.json()["sample_group"] == body["sample_group"]


def test_a_group_without_a_majority_marks_none(api_client, api_key):
    r = post(api_client, "/api/v1/outputs", {"prompt": PEN, "samples": [EIGHTEEN[0], TWENTY_FOUR]}, api_key)
    body = r.json()
    assert body["majority_answer"] is None
    assert [o["agreement"] for o in body["outputs"]] == [0.0, 0.0]
    assert [o["is_majority"] for o in body["outputs"]] == [False, False]


@pytest.mark.parametrize(
    "body, field, says",
    [
        ({"prompt": PEN, "samples": [EIGHTEEN[0]]}, "samples", "2 to 16"),
        ({"prompt": PEN, "samples": EIGHTEEN * 5 + [TWENTY_FOUR, TWENTY_FOUR]}, "samples", "at most 16"),
        ({"prompt": PEN, "samples": [EIGHTEEN[0], 18]}, "samples", "valid string"),
        ({"prompt": PEN, "samples": [EIGHTEEN[0], ""]}, "samples", "blank"),
        ({"prompt": PEN, "samples": EIGHTEEN[0]}, "samples", "list"),
        ({"prompt": PEN, "samples": EIGHTEEN, "text": WRONG}, "samples", "not both"),
        ({"prompt": PEN, "samples": EIGHTEEN, "sample_logprobs": [None]}, "sample_logprobs", "one entry per"),
        ({"prompt": PEN, "samples": EIGHTEEN, "logprobs": {"content": []}}, "logprobs", "sample_logprobs"),
        ({"prompt": PEN, "text": WRONG, "sample_logprobs": [None, None]}, "sample_logprobs", "only with"),
        ({"prompt": PEN, "text": WRONG, "logprobs": [1]}, "logprobs", "content"),
        (
            {"prompt": PEN, "text": WRONG, "logprobs": {"content": [{"token": "a", "logprob": 0.5}]}},
            "logprobs",
            "<= 0",
        ),
        (
            {"prompt": PEN, "text": WRONG, "logprobs": {"content": [{"token": 1, "logprob": -1}]}},
            "logprobs",
            "string",
        ),
        (
            {"prompt": PEN, "text": WRONG, "logprobs": {"content": [{"token": "a", "logprob": "x"}]}},
            "logprobs",
            "number",
        ),
    ],
)
def test_bad_samples_or_logprobs_are_a_400_that_writes_nothing(api_client, api_key, body, field, says):
    r = post(api_client, "/api/v1/outputs", body, api_key)
    assert r.status_code == 400, r.content
    error = r.json()["error"]
    assert error["code"] == "validation_error" and field in error["fields"]
    assert says in json.dumps(error["fields"][field])
    assert Output.objects.count() == 0


def test_a_group_that_fails_midway_writes_nothing(product_app, monkeypatch):
    from inference import hooks

    def fail_on_the_second(output):
        if Output.objects.filter(sample_group=output.sample_group).count() >= 2:
            raise RuntimeError("capture failed")

    monkeypatch.setattr(hooks, "_output_created", [*hooks._output_created, fail_on_the_second])
    samples = [services.SampleText(raw_text=t) for t in [*EIGHTEEN, TWENTY_FOUR]]
    with pytest.raises(RuntimeError):
        services.output_group_create(app=product_app, prompt=PEN, samples=samples)
    assert Output.objects.count() == 0 and ReviewItem.objects.count() == 0


def test_an_idempotency_key_replays_the_whole_group(api_client, api_key):
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": "group-1"}

    def send(body):
        return api_client.post(
            "/api/v1/outputs", data=json.dumps(body), content_type="application/json", headers=headers
        )

    first = send({"prompt": PEN, "samples": EIGHTEEN})
    again = send({"prompt": PEN, "samples": EIGHTEEN})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert Output.objects.count() == 3
    single = send({"prompt": PEN, "text": WRONG})
    assert single.status_code == 409 and single.json()["error"]["code"] == "idempotency_key_reused"
    assert Output.objects.count() == 3


def _logprobs(pairs):
    return {"content": [{"token": t, "logprob": lp, "top_logprobs": []} for t, lp in pairs]}


def test_posted_logprobs_give_the_model_confidence(api_client, api_key):
    import math

    answer = [("3 * 6 = 18", -1.0), ("\n", 0.0), ("</think>", 0.0), ("\n\n", 0.0), ("The answer is ", -0.1)]
    sure = _logprobs([*answer, ("1", -0.05), ("8", -0.01), (".", 0.0)])
    unsure = _logprobs([*answer, ("2", -1.2), ("4", -0.3), (".", 0.0)])
    r = post(api_client, "/api/v1/outputs", {"prompt": PEN, "text": EIGHTEEN[0], "logprobs": sure}, api_key)
    assert r.status_code == 201, r.content
    assert r.json()["model_confidence"] == pytest.approx(math.exp(-0.06))
    assert r.json()["head_confidence"] is None
    plain = post(
        api_client, "/api/v1/outputs", {"prompt": PEN, "text": EIGHTEEN[0], "logprobs": None}, api_key
    )
    assert plain.json()["model_confidence"] is None

    group = post(
        api_client,
        "/api/v1/outputs",
        {
            "prompt": PEN,
            "samples": [EIGHTEEN[0], TWENTY_FOUR, EIGHTEEN[2]],
            "sample_logprobs": [sure, unsure, None],
        },
        api_key,
    ).json()
    confidences = [o["model_confidence"] for o in group["outputs"]]
    assert confidences == [pytest.approx(math.exp(-0.06)), pytest.approx(math.exp(-1.5)), None]
    stored = Output.objects.get(uuid=group["outputs"][1]["id"])
    assert stored.model_confidence == pytest.approx(math.exp(-1.5))


def test_a_body_over_the_size_limit_is_a_json_413(api_client, api_key, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    r = post(api_client, "/api/v1/outputs", {"prompt": PEN, "samples": [EIGHTEEN[0] * 20] * 2}, api_key)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert r.json()["error"]["limit"] == 1000
    assert Output.objects.count() == 0
