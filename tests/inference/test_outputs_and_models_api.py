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
