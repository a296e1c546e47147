"""A worker killed mid-training leaves a run that resumes, never a half-registered model."""

import os
import signal
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from annotation import services as annotation_services
from feedback import services as feedback_services
from inference import services as inference_services
from inference.engine import workload
from inference.models import ModelVersion
from retrain import services
from retrain.embedded import register_embedded_eval_set
from retrain.models import TrainingRun
from tests.django_fixtures import start_worker, stop_process


def _wait(run, stages, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.stage in stages:
            return run
        time.sleep(0.2)
    pytest.fail(f"run stayed in {run.stage}")


@pytest.mark.worker
def test_killed_worker_run_resumes_and_registers_one_candidate(
    transactional_db, outbox_relay_running, product_app, reviewer
):
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    for p in workload.problems(12, seed=21, split="train"):
        solved = workload.solve(p.prompt)
        output = inference_services.output_create(
            app=product_app, prompt=p.prompt, raw_text="Step 1 [deduction]: 1 + 1 = 3\n</think>\n3"
        )
        item = feedback_services.review_item_claim(item_id=output.review_item.pk, user=reviewer)
        annotation_services.annotation_submit(
            item_id=item.pk,
            annotator=reviewer,
            corrected_answer=str(solved.answer),
            error_type="arithmetic",
            corrected_steps=[{"text": s.text, "strategy": s.strategy} for s in solved.steps],
            confidence_low=0.9,
            confidence_high=1.0,
            transparent=True,
        )
    dataset = services.dataset_version_build(period="2026-10")
    inference_services.model_version_ensure_base()
    register_embedded_eval_set()  # the gate measures on an evaluation set

    worker = start_worker(settings.REDIS_URL, "doomed-worker")
    try:
        run = services.training_run_start(dataset=dataset, period="2026-Q4", config={"epochs": 60})
        _wait(run, {"training"}, 120)
        time.sleep(2)
        os.killpg(worker.pid, signal.SIGKILL)  # no warm shutdown, no cleanup
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            stop_process(worker)
    run.refresh_from_db()
    assert run.stage == "training" and run.result_version is None
    assert ModelVersion.objects.filter(status="candidate").count() == 0

    # Time passes: the lease goes stale and the reconcile beat hands the run to a new worker.
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=30))
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # the dead worker's unacked message
    worker = start_worker(settings.REDIS_URL, "rescue-worker")
    try:
        assert services.training_run_reconcile() == [run.pk]
        run = _wait(run, {"done", "failed"}, 600)
    finally:
        stop_process(worker)
    assert run.stage == "done", run.error
    assert run.progress["attempts"] == 2
    assert run.result_version is not None and run.decision["reason"]
    assert ModelVersion.objects.exclude(recipe="base").count() == 1  # one candidate, fully registered
    assert run.result_version.manifest and run.result_version.status in ("active", "rejected")
