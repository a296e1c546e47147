"""A version no process can load is never promoted; serving heals; PostgreSQL faults after a
commit, concurrent starts and changed dataset files end in clear answers, not 500s."""

import hashlib
import threading

import pytest
from django.db import connections

from cogloop import outbox
from cogloop.errors import ApplicationError
from cogloop.models import OutboxMessage
from feedback.models import Feedback
from inference import services, serving
from inference.models import ModelVersion
from retrain.embedded import register_embedded_eval_set
from retrain.models import DatasetVersion, TrainingRun
from retrain.services import runs

from .conftest import make_outputs, post_feedback, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def _copy_of(base, name):
    source = services.store_path(base.weights_path)
    return services.model_version_register(name=name, source_dir=source, base_model_path=base.base_model_path)


def _flip_last_byte(version):
    weights = services.store_path(version.weights_path) / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
    return weights, original


def test_a_version_tampered_after_registration_is_rejected_not_promoted():
    base = services.model_version_ensure_base()
    candidate = _copy_of(base, "tampered-after-registration")
    _flip_last_byte(candidate)
    with pytest.raises(ApplicationError) as refused:
        services.model_version_promote(version=candidate, reason="test")
    assert refused.value.code == "verification_failed"
    candidate.refresh_from_db()
    assert candidate.status == ModelVersion.Status.REJECTED
    assert "manifest mismatch" in candidate.promotion_history[-1]["reason"]
    assert ModelVersion.objects.get(status=ModelVersion.Status.ACTIVE) == base


def test_serving_falls_back_to_the_last_good_version_and_retries_the_refused_one(monkeypatch):
    base = services.model_version_ensure_base()
    candidate = _copy_of(base, "breaks-later")
    services.model_version_promote(version=candidate, reason="test")
    weights, original = _flip_last_byte(candidate)  # broken after promotion (a bad disk, a bad copy)

    # A process starting now cannot load the active version: it serves the previous one.
    assert serving.sync_with_registry() == base.pk
    assert "manifest mismatch" in serving.refusal_reason(candidate.pk)

    # Repaired: the refusal is retried once its backoff has passed, no restart needed.
    weights.write_bytes(original)
    assert serving.sync_with_registry() == base.pk  # backoff not yet over
    monkeypatch.setattr(serving._refused[candidate.pk], "retry_at", 0.0)
    assert serving.sync_with_registry() == candidate.pk
    assert serving.refusal_reason(candidate.pk) is None


def test_the_relay_outlives_its_database_connection_being_dropped(
    product_app, api_key, api_client, monkeypatch, record
):
    """Write requests no longer publish (cogloop.outbox): the beat's relay thread does. Its
    PostgreSQL connection is terminated in the middle of a relay; it reconnects by itself and
    publishes everything, and the requests never noticed."""
    real_relay = outbox.outbox_relay
    dropped = threading.Event()

    def relay_on_a_dead_connection(**kwargs):
        if not dropped.is_set():
            dropped.set()
            with connections["default"].cursor() as cursor:
                pid = cursor.connection.info.backend_pid
            other = connections.create_connection("default")
            with other.cursor() as c:
                c.execute("SELECT pg_terminate_backend(%s)", [pid])
            other.close()
        return real_relay(**kwargs)

    monkeypatch.setattr(outbox, "outbox_relay", relay_on_a_dead_connection)
    outputs = make_outputs(product_app, 5, tag="commit ")
    answers = [post_feedback(api_client, api_key, o).status_code for o in outputs]
    thread, stop = outbox.outbox_relay_thread_start(interval=0.1)
    try:
        unsent = OutboxMessage.objects.filter(sent_at__isnull=True)
        assert wait_for(lambda: dropped.is_set() and not unsent.exists(), timeout=20)
    finally:
        stop.set()
        thread.join(timeout=15)
    assert answers == [201] * 5
    from datetime import timedelta

    from feedback.services import feedback_capture_reconcile

    feedback_capture_reconcile(grace=timedelta(0))  # no worker here: the reconcile runs the captures
    figures = record(
        fault="PostgreSQL connection of the outbox relay dropped mid-relay, 5 posts",
        sent=5,
        acknowledged=answers.count(201),
        persisted=Feedback.objects.count(),
        captured=Feedback.objects.filter(captured_at__isnull=False).count(),
    )
    assert figures["lost"] == 0


def test_concurrent_training_run_starts_get_run_exists_not_integrity_error(monkeypatch):
    services.model_version_ensure_base()
    register_embedded_eval_set()  # a run gates on an evaluation set
    dataset = DatasetVersion.objects.create(period="2026-10", sha256="0" * 64)
    real = runs._train_config

    def a_concurrent_start_commits_first(recipe, config):
        def other():
            TrainingRun.objects.create(
                period="2026-Q4", dataset=dataset, base_version=ModelVersion.objects.get(status="active")
            )
            connections.close_all()

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        return real(recipe, config)

    monkeypatch.setattr(runs, "_train_config", a_concurrent_start_commits_first)
    with pytest.raises(ApplicationError) as refused:
        runs.training_run_start(dataset=dataset, period="2026-Q4", enqueue=False)
    assert (refused.value.code, refused.value.status) == ("run_exists", 409)


def test_a_run_fails_clearly_when_its_dataset_files_changed(tmp_path):
    services.model_version_ensure_base()
    register_embedded_eval_set()  # a run gates on an evaluation set
    exported = tmp_path / "sft.jsonl"
    exported.write_text('{"messages": []}\n')
    digest = hashlib.sha256(exported.read_bytes()).hexdigest()
    dataset = DatasetVersion.objects.create(
        period="2026-10", sha256="0" * 64, files={"sft": {"path": str(exported), "rows": 1, "sha256": digest}}
    )
    run = runs.training_run_start(dataset=dataset, period="2026-Q4", enqueue=False)
    exported.write_text('{"messages": ["edited"]}\n')
    with pytest.raises(ApplicationError):
        runs.training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.stage == TrainingRun.Stage.FAILED
    assert "sft" in run.error and "changed since export" in run.error
