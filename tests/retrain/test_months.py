"""Months that keep teaching: balanced admission, verified-right answers as replay, retired
error classes, periods that mean a month or a quarter, and retries in a run's own period."""

from datetime import date

import pytest

from annotation import services as annotation_services
from annotation.models import Annotation
from cogloop.errors import ApplicationError
from feedback import services as feedback_services
from inference import services as inference_services
from inference.engine import workload
from retrain import periods, selectors, services
from retrain.embedded import register_embedded_eval_set
from retrain.models import Evaluation, TrainingRun

WRONG = "Step 1 [deduction]: {a} - 1 = {b}\n</think>\n\nThe answer is {b}."


@pytest.fixture
def annotate(product_app, reviewer, policy):
    policy(second=0.0)
    problems = iter(workload.problems(300, seed=11, split="train"))

    def make(n: int, *, error_type: str = "arithmetic", strategy: str = "deduction", score_text=WRONG):
        made = []
        for _ in range(n):
            p = next(problems)
            output = inference_services.output_create(
                app=product_app, prompt=p.prompt, raw_text=score_text.format(a=10, b=12)
            )
            item = output.review_item
            feedback_services.review_item_claim(item_id=item.pk, user=reviewer)
            made.append(
                annotation_services.annotation_submit(
                    item_id=item.pk,
                    annotator=reviewer,
                    corrected_steps=[{"text": "10 - 1 = 9", "strategy": strategy}],
                    corrected_answer="9",
                    error_type=error_type,
                    confidence_low=0.8,
                    confidence_high=0.9,
                    transparent=True,
                )
            )
        return made

    return make


@pytest.mark.parametrize(
    "period, ok",
    [("2026-11", True), ("2026-13", False), ("26-11", False), ("2026-Q4-retry", False), ("2999-01", False)],
)
def test_a_month_is_yyyy_mm_and_has_begun(period, ok):
    today = date(2026, 12, 1)
    if ok:
        assert periods.month_checked(period, today=today) == period
    else:
        with pytest.raises(ApplicationError) as exc:
            periods.month_checked(period, today=today)
        assert exc.value.code == "invalid_period" and "period" in exc.value.extra["fields"]


@pytest.mark.parametrize(
    "period, ok", [("2026-Q4", True), ("2026-Q5", False), ("2027-Q1", False), ("2026-12", False)]
)
def test_a_quarter_is_yyyy_qn_and_has_begun(period, ok):
    today = date(2026, 12, 1)
    if ok:
        assert periods.quarter_checked(period, today=today) == period
    else:
        with pytest.raises(ApplicationError):
            periods.quarter_checked(period, today=today)


def test_a_future_month_is_refused_before_anything_is_written(annotate):
    annotate(1)
    with pytest.raises(ApplicationError) as exc:
        services.dataset_version_build(period="2999-01")
    assert exc.value.code == "invalid_period"


def test_admission_takes_turns_across_error_classes_instead_of_lowest_score_first(annotate, settings):
    settings.COGLOOP = {**settings.COGLOOP, "DATASET_MAX_GROWTH": 0.5}
    annotate(10)
    services.dataset_version_build(period="2026-09")
    annotate(6, error_type="arithmetic")
    annotate(2, error_type="wrong_operation", strategy="induction")
    verified = annotate(2, error_type="none", strategy="analogy")
    second = services.dataset_version_build(period="2026-10")  # room for 5 of the 10 new
    admitted = second.composition["error_types"]
    assert admitted["wrong_operation"] >= 1 and admitted["none"] >= 1 and admitted["arithmetic"] == 10 + 2
    # a verified-right answer trains as replay: no "rejected" response, no preference pair
    rows = selectors.reflection_rows(second)
    prompts = {a.review_item.output.prompt for a in verified}
    replayed = [r for r in rows if r["prompt"] in prompts]
    assert replayed and all("rejected" not in r for r in replayed)
    assert second.files["preference"]["rows"] == len(rows) - len(replayed)


def test_samples_of_an_error_class_the_serving_model_no_longer_makes_are_retired(annotate):
    annotate(3)
    annotate(2, error_type="wrong_operation")
    first = services.dataset_version_build(period="2026-09")
    base = inference_services.model_version_ensure_base()
    register_embedded_eval_set()  # the gate measures on an evaluation set
    Evaluation.objects.create(
        model_version=base,
        eval_set="workload-heldout",
        metrics={"n": 100, "own_errors": {"wrong_operation": 4}},
    )
    annotate(1, error_type="wrong_operation")
    second = services.dataset_version_build(period="2026-10")
    assert second.composition["retired"] == {
        "error_types": ["arithmetic", "inconsistent_answer"],
        "samples": 9,
    }
    assert second.composition["error_types"] == {"wrong_operation": 3}
    assert first.counts["reflection"] == 5  # history is untouched


@pytest.fixture
def run(annotate):
    annotate(2)
    dataset = services.dataset_version_build(period="2026-10")
    inference_services.model_version_ensure_base()
    register_embedded_eval_set()  # the gate measures on an evaluation set
    return services.training_run_start(dataset=dataset, period="2026-Q4", enqueue=False)


def test_a_rejected_run_is_retried_in_its_period_and_keeps_its_history(run, annotate):
    TrainingRun.objects.filter(pk=run.pk).update(
        stage="done", decision={"promote": False, "reason": "accuracy gain +0.010 is below", "gain": 0.01}
    )
    with pytest.raises(ApplicationError) as exc:
        services.training_run_start(dataset=run.dataset, period="2026-Q4")
    assert exc.value.code == "run_exists" and exc.value.extra["retryable"] is True
    annotate(1)
    newer = services.dataset_version_build(period="2026-11")
    retried = services.training_run_retry(run_id=run.pk, config={"epochs": 4}, enqueue=False)
    assert retried.pk == run.pk and retried.period == "2026-Q4" and retried.attempt == 2
    assert retried.stage == "queued" and retried.decision == {} and retried.dataset == newer
    assert retried.config["epochs"] == 4
    assert retried.history[0]["attempt"] == 1 and retried.history[0]["decision"]["promote"] is False
    assert TrainingRun.objects.count() == 1


def test_a_promoted_or_running_run_is_not_retried(run):
    with pytest.raises(ApplicationError) as exc:
        services.training_run_retry(run_id=run.pk)
    assert exc.value.code == "not_retryable"
    TrainingRun.objects.filter(pk=run.pk).update(stage="done", decision={"promote": True, "reason": "ok"})
    with pytest.raises(ApplicationError) as exc:
        services.training_run_retry(run_id=run.pk)
    assert exc.value.code == "not_retryable"
    assert Annotation.objects.count() == 2


def test_a_run_without_an_evaluation_set_is_refused_with_the_reason(annotate):
    annotate(1)
    dataset = services.dataset_version_build(period="2026-10")
    inference_services.model_version_ensure_base()
    with pytest.raises(ApplicationError) as exc:
        services.training_run_start(dataset=dataset, period="2026-Q4", enqueue=False)
    assert exc.value.code == "no_eval_set" and "evalset import" in exc.value.message
    assert not TrainingRun.objects.exists()
    assert services.training_run_start_quarterly() is None  # the beat says so in the log, no crash


def test_a_run_renders_corrections_as_its_base_model_writes(annotate):
    from inference.engine import chat

    annotate(1)
    dataset = services.dataset_version_build(period="2026-10")
    [lines] = selectors.reflection_rows(dataset, style=chat.STEP_LINES)
    [paragraphs] = selectors.reflection_rows(dataset, style=chat.PARAGRAPHS)
    assert lines["chosen"].startswith("Step 1 [deduction]: 10 - 1 = 9\n</think>")
    assert paragraphs["chosen"] == "10 - 1 = 9\n</think>\n\nThe answer is 9."
    assert lines["rejected"] == paragraphs["rejected"]  # the original is the model's own text


def test_a_correction_can_be_rendered_as_the_model_catching_its_own_slip(annotate):
    from inference.engine import chat
    from inference.engine.parser import parse_output
    from retrain.trainer.evaluate import correction_distances

    annotate(1)  # the original "10 - 1 = 12" (a wrong claim) corrected to "10 - 1 = 9"
    dataset = services.dataset_version_build(period="2026-10")
    [clean] = selectors.reflection_rows(dataset, style=chat.STEP_LINES)
    [caught] = selectors.reflection_rows(dataset, style=chat.STEP_LINES, self_correction_share=1.0)
    assert caught["chosen"] == (
        "Step 1 [deduction]: 10 - 1 = 12\nStep 2 [deduction]: Wait, that is wrong: 10 - 1 = 9\n"
        "</think>\n\nThe answer is 9."
    )
    assert caught["rejected"] == clean["rejected"]
    # The checker sees the slip and its correction one step later: nothing left uncorrected.
    assert correction_distances(parse_output(caught["chosen"])) == ([1], 0)
    assert correction_distances(parse_output(clean["rejected"])) == ([], 1)


def test_only_a_wrong_claim_is_rendered_as_a_slip(annotate):
    from inference.engine import chat

    # The reviewer changed a step whose claim was right (the answer was the error, not a sum):
    # "Wait, that is wrong" would be a lie, so the correction stays clean.
    annotate(
        1,
        error_type="inconsistent_answer",
        score_text="Step 1 [deduction]: {a} + 1 = 11\n</think>\n\nThe answer is {b}.",
    )
    dataset = services.dataset_version_build(period="2026-10")
    [row] = selectors.reflection_rows(dataset, style=chat.STEP_LINES, self_correction_share=1.0)
    assert row["chosen"].startswith("Step 1 [deduction]: 10 - 1 = 9\n</think>")
