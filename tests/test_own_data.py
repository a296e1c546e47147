"""A team's own data end to end: GSM8K problems as the evaluation set, real solutions (some with
planted errors) posted as answers made elsewhere, reviewed through the review pages, trained
on, and gated on the imported set. PostgreSQL, Redis and a real Celery worker.

cogloop-tiny cannot solve grade-school math: this checks the machinery, not a gain.
"""

import json
import random
import time
from pathlib import Path

import pytest

from demo import simulation
from feedback.models import ReviewItem
from inference.models import Output
from retrain import services as retrain_services
from retrain.models import Evaluation, TrainingRun
from tests.bench import inject

EXCERPT = Path(__file__).resolve().parent / "fixtures" / "gsm8k_excerpt.jsonl"


def _solutions() -> list[inject.Solution]:
    return inject.load(EXCERPT)


@pytest.mark.worker
def test_gsm8k_eval_set_external_answers_review_training_and_a_gate_that_names_the_set(
    celery_worker_process, api_key, api_client, django_user_model, tmp_path, policy
):
    from inference.services import model_version_ensure_base

    policy(second=0.0)
    solutions = _solutions()
    traffic = solutions[10:34]  # the first 10 are the held-out evaluation set
    # 1. the evaluation set, imported from GSM8K's own format
    eval_file = tmp_path / "heldout.jsonl"
    lines = [line for line in EXCERPT.read_text().splitlines() if line.strip()][:10]
    eval_file.write_text("\n".join(lines) + "\n")
    version = retrain_services.eval_set_import(name="gsm8k-heldout", lines=eval_file)
    assert version.item_count == 10 and version.number == 1
    base = model_version_ensure_base()

    # 2. real solutions as answers made elsewhere; every other one with a planted arithmetic error
    rng = random.Random(5)
    wrong_prompts = set()
    for i, sol in enumerate(traffic):
        text = inject.to_r1(sol)
        if i % 2 == 0:
            planted = inject.arithmetic(sol, rng, propagate=True)
            if planted is not None:
                text = inject.to_r1(planted.solution)
                wrong_prompts.add(sol.question)
        r = api_client.post(
            "/api/v1/outputs",
            {"prompt": sol.question, "text": text},
            format="json",
            HTTP_AUTHORIZATION=f"Bearer {api_key}",
        )
        assert r.status_code == 201, r.content
    captured = {item.output.prompt for item in ReviewItem.objects.select_related("output")}
    # the checker catches planted arithmetic errors (about 96 % on GSM8K; see docs/benchmarks.md)
    assert len(wrong_prompts & captured) >= 0.8 * len(wrong_prompts) > 0

    # 3. a reviewer corrects them through the review pages, with the reference solution
    by_prompt = {sol.question: sol for sol in solutions}

    def reference(steps, prompt):
        sol = by_prompt[prompt]
        right = [inject.NOTE.sub("", line) for line in sol.lines]
        original = [s["text"] for s in steps]
        first_wrong = next((i for i, (a, b) in enumerate(zip(original, right), 1) if a != b), None)
        return {
            "steps": [{"text": t, "strategy": "deduction"} for t in right],
            "answer": f"The answer is {sol.answer}.",
            "first_wrong_step": first_wrong,
            "error_type": "arithmetic" if first_wrong else "none",
        }

    django_user_model.objects.create_user(username="rev", password="rev-review-1")
    annotated = simulation.review_queue("rev", "rev-review-1", correction=reference)
    assert annotated == len(captured)

    # 4. the month's dataset, trained on the tiny model by the worker, gated on the imported set
    dataset = retrain_services.dataset_version_build()
    assert dataset.counts["reflection"] > 0
    run = retrain_services.training_run_start(dataset=dataset, recipe="lora-all", config={"epochs": 1})
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.stage in (TrainingRun.Stage.DONE, TrainingRun.Stage.FAILED):
            break
        time.sleep(1)
    assert run.stage == TrainingRun.Stage.DONE, run.error
    named = {(s["name"], s["version"], s["n"]) for s in run.decision["eval_sets"]}
    assert ("gsm8k-heldout", 1, 10) in named
    assert "gsm8k-heldout v1" in run.decision["reason"]
    evaluation = Evaluation.objects.get(training_run=run, model_version=base)
    assert "gsm8k-heldout v1" in evaluation.eval_set
    assert evaluation.metrics["slices"]["gsm8k-heldout"]["n"] == 10
    assert json.dumps(run.decision)  # the decision is stored as JSON, sets and versions named
    assert Output.objects.filter(source=Output.Source.EXTERNAL).count() == len(traffic)
