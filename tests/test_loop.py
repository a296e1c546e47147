"""The whole loop on a small budget, with a real Celery worker on Redis and PostgreSQL."""

import time

import pytest

from demo import simulation
from feedback.models import ReviewItem
from inference import serving
from inference.engine import workload
from inference.models import ModelVersion, Output
from retrain import services as retrain_services
from retrain.embedded import register_embedded_eval_set
from retrain.models import Evaluation, TrainingRun


@pytest.mark.worker
def test_closed_loop_captures_corrects_retrains_promotes_and_swaps(
    celery_worker_process, api_key, django_user_model
):
    from inference.services import model_version_ensure_base

    base = model_version_ensure_base()
    register_embedded_eval_set()  # the gate measures on an evaluation set
    prompts = [p.prompt for p in workload.problems(400, seed=11, split="train")]
    simulation.send_traffic(api_key, prompts)
    captured = ReviewItem.objects.count()
    blind_outputs = [o for o in Output.objects.all() if workload.solve(o.prompt).slice == "blind_spot"]
    assert blind_outputs, "the traffic should contain blind-spot problems"
    assert all(hasattr(o, "review_item") for o in blind_outputs), (
        "every blind-spot answer is wrong and captured"
    )

    django_user_model.objects.create_user(username="sim", password="sim-review-1")
    annotated = simulation.review_queue("sim", "sim-review-1")
    assert annotated == captured

    dataset = retrain_services.dataset_version_build()
    assert dataset.counts["reflection"] == dataset.samples.filter(kind="reflection").count() > 0

    run = retrain_services.training_run_start(dataset=dataset, recipe="lora-all")
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.stage in (TrainingRun.Stage.DONE, TrainingRun.Stage.FAILED):
            break
        time.sleep(1)
    assert run.stage == TrainingRun.Stage.DONE, run.error
    assert run.loss_history and run.loss_history[-1]["loss"] < run.loss_history[0]["loss"]

    candidate = run.result_version
    before = Evaluation.objects.get(training_run=run, model_version=base).metrics
    after = Evaluation.objects.get(training_run=run, model_version=candidate).metrics
    assert after["slices"]["blind_spot"]["accuracy"] > before["slices"]["blind_spot"]["accuracy"]
    assert run.decision["promote"], run.decision["reason"]

    candidate.refresh_from_db()
    base.refresh_from_db()
    assert candidate.status == ModelVersion.Status.ACTIVE and base.status == ModelVersion.Status.RETIRED
    assert candidate.manifest and all(len(h) == 64 for h in candidate.manifest.values())

    # The serving process (this one) follows the registry and answers with the new model.
    assert serving.sync_with_registry() == candidate.pk
    served = simulation.send_traffic(api_key, ["Start with 50. Take away 7. What is the result?"])[0]
    served_output = Output.objects.get(uuid=served["id"])
    assert served_output.model_version == candidate
    # The candidate's head was trained with it: confidences are numbers now, and measured.
    assert served_output.head_confidence is not None and 0 <= served_output.head_confidence <= 1
    assert after["ece"] is not None and before["ece"] is None
    assert run.loss_history[-1].keys() >= {"ce", "meta", "cons"}
