"""Every model's admin list renders with its filters and search, and the retraining pages
build a dataset version and start a training run through the services."""

import pytest
from django.contrib import admin
from django.urls import reverse

from retrain.embedded import register_embedded_eval_set
from tests.dashboards.seed import seed_loop


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser(username="root", password="root-pass-1"))
    return client


@pytest.mark.parametrize(
    "model",
    [
        m
        for m in admin.site._registry
        if m._meta.app_label in ("cogloop", "inference", "feedback", "retrain", "annotation")
    ],
    ids=lambda m: m._meta.label,
)
def test_every_admin_list_renders_and_searches(superuser_client, model):
    seed_loop(scale=1)
    model_admin = admin.site._registry[model]
    assert model_admin.list_display != ("__str__",), f"{model._meta.label} has no list_display"
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    assert superuser_client.get(url).status_code == 200
    if model_admin.search_fields:
        assert superuser_client.get(url, {"q": "cogloop"}).status_code == 200


def test_add_dataset_version_builds_one_from_approved_annotations(superuser_client, settings, tmp_path):
    from retrain.models import DatasetVersion
    from tests.dashboards.seed import seed_traffic

    settings.VAR_DIR = tmp_path
    seed_loop(scale=1)
    seed_traffic(scale=1, seed=3)  # approved annotations not in any dataset yet
    before = DatasetVersion.objects.count()
    url = reverse("admin:retrain_datasetversion_add")
    assert b"Build a dataset version" in superuser_client.get(url).content
    response = superuser_client.post(url, {"period": "2026-04"}, follow=True)
    assert "Built dataset 2026-04" in response.content.decode(), response.content.decode()[-3000:]
    assert DatasetVersion.objects.count() == before + 1
    assert "Built dataset 2026-04" in response.content.decode()
    again = superuser_client.post(url, {"period": "2026-04"}, follow=True)
    assert "exists and is immutable" in again.content.decode()


def test_start_training_run_queues_one_per_quarter(superuser_client):
    from cogloop.models import OutboxMessage
    from retrain.models import DatasetVersion, TrainingRun

    seed_loop(scale=1)
    register_embedded_eval_set()  # a run gates on an evaluation set
    dataset = DatasetVersion.objects.order_by("-period").first()
    url = reverse("admin:retrain_trainingrun_add")
    superuser_client.post(url, {"dataset": dataset.pk, "recipe": "lora-all", "period": "2026-Q4"})
    run = TrainingRun.objects.get(period="2026-Q4")
    assert run.stage == TrainingRun.Stage.QUEUED and run.dataset == dataset
    # queued through the outbox, which the beat's relay publishes (cogloop.outbox)
    assert OutboxMessage.objects.filter(payload={"run_id": run.pk}).count() == 1
    response = superuser_client.post(url, {"dataset": dataset.pk, "recipe": "lora-all", "period": "2026-Q4"})
    assert f"training run {run.pk}" in response.content.decode()


def test_promoting_a_rejected_version_is_refused_with_a_message(superuser_client):
    from inference.models import ModelVersion

    seed_loop(scale=1)
    rejected = ModelVersion.objects.get(status=ModelVersion.Status.REJECTED)
    response = superuser_client.post(
        reverse("admin:inference_modelversion_changelist"),
        {"action": "promote", "_selected_action": [rejected.pk]},
        follow=True,
    )
    assert "cannot be promoted" in response.content.decode()
    assert ModelVersion.objects.get(pk=rejected.pk).status == ModelVersion.Status.REJECTED


def test_rollback_from_the_admin_reactivates_the_replaced_version(superuser_client):
    from inference.models import ModelVersion

    seed_loop(scale=1)
    active = ModelVersion.objects.get(status=ModelVersion.Status.ACTIVE)
    superuser_client.post(
        reverse("admin:inference_modelversion_changelist"),
        {"action": "rollback", "_selected_action": [active.pk]},
        follow=True,
    )
    assert ModelVersion.objects.get(status=ModelVersion.Status.ACTIVE).name == "cogloop-tiny-base"
