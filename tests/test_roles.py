"""Process roles (settings.COGLOOP_ROLE): what a web process refuses to do with a model."""

import pytest

from cogloop.models import OutboxMessage
from inference import services, serving
from inference.models import ModelVersion


@pytest.fixture
def web_role(settings):
    settings.COGLOOP_ROLE = "web"
    serving.reset_unsafe()
    yield
    serving.reset_unsafe()


@pytest.mark.django_db
def test_web_readyz_checks_the_database_and_no_model(client, web_role):
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["role"] == "web" and "model" not in r.json()["checks"]
    assert serving.SLOT.current is None


@pytest.mark.django_db
def test_web_role_hands_promotion_to_a_worker(web_role, settings):
    settings.COGLOOP_ROLE = "all"
    base = services.model_version_ensure_base()
    candidate = services.model_version_register(
        name="candidate", source_dir=settings.BASE_MODEL, base_model_path="x", recipe="base"
    )
    serving.reset_unsafe()
    settings.COGLOOP_ROLE = "web"
    version = services.model_version_promote(version=candidate, reason="test")
    assert version.status != ModelVersion.Status.ACTIVE and serving.SLOT.current is None
    message = OutboxMessage.objects.get(task_name="inference.model_version_promote")
    assert message.payload == {"version_id": candidate.pk, "reason": "test"}
    # The worker's task verifies (it may load a model) and promotes.
    settings.COGLOOP_ROLE = "worker"
    from inference.tasks import model_version_promote

    model_version_promote(**message.payload)
    candidate.refresh_from_db()
    base.refresh_from_db()
    assert candidate.status == ModelVersion.Status.ACTIVE and base.status == ModelVersion.Status.RETIRED


@pytest.mark.django_db
def test_web_role_refuses_generation(client, web_role, api_key, settings):
    settings.COGLOOP_ROLE = "all"
    services.model_version_ensure_base()
    serving.reset_unsafe()
    settings.COGLOOP_ROLE = "web"
    r = client.post(
        "/api/v1/generate",
        {"prompt": "Start with 3. Add 4. What is the result?"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_model"
    assert serving.SLOT.current is None


def test_request_id_is_read_or_made_and_answered(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"})["X-Request-ID"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})["X-Request-ID"]
    assert made != "bad id with spaces" and len(made) == 32
