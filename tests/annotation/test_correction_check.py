"""Corrections are checked before they count; a lead can take an approved one back."""

import pytest

from annotation import services
from annotation.checks import answers_agree, correction_problems
from annotation.models import Annotation, AuditEvent
from cogloop.errors import ApplicationError
from feedback.models import ReviewItem
from inference.engine import workload
from retrain import services as retrain_services
from retrain.models import TrainingSample
from tests.annotation.factories import make_item, submit


def test_the_checker_names_the_step_with_a_wrong_claim_and_an_answer_that_disagrees():
    steps = [
        {"text": "Start with 42.", "strategy": "deduction"},
        {"text": "42 - 8 = 35", "strategy": "deduction"},
    ]
    problems = correction_problems(steps, "The answer is 35.")
    assert problems == {"corrected_steps": ["step 2: 42 - 8 = 35 is not right"]}
    right = [{"text": "42 - 8 = 34", "strategy": "deduction"}]
    assert correction_problems(right, "The answer is 34.") == {}
    assert "conclude 34" in correction_problems(right, "35")["corrected_answer"][0]
    assert correction_problems([{"text": "take away eight", "strategy": "other"}], "34") == {}


def test_answers_agree_by_value():
    assert answers_agree("34", "The answer is 34.0")
    assert answers_agree("$1,200", "1200 dollars")
    assert not answers_agree("34", "35")
    assert answers_agree("no answer", "No answer.")


@pytest.fixture
def item(product_app):
    return make_item(product_app)


def test_a_wrong_correction_is_refused_at_submit_and_changes_nothing(item, reviewer):
    with pytest.raises(ApplicationError) as exc:
        submit(item, reviewer, corrected_steps=[{"text": "42 - 8 = 35", "strategy": "deduction"}])
    assert exc.value.code == "correction_check_failed"
    assert exc.value.extra["fields"]["corrected_steps"] == ["step 1: 42 - 8 = 35 is not right"]
    assert not Annotation.objects.exists()
    with pytest.raises(ApplicationError) as exc:
        services.annotation_submit(
            item_id=item.pk,
            annotator=reviewer,
            corrected_steps=[{"text": "42 - 8 = 34", "strategy": "deduction"}],
            corrected_answer="35",
            error_type="arithmetic",
            confidence_low=0.8,
            confidence_high=0.9,
            transparent=True,
        )
    assert set(exc.value.extra["fields"]) == {"corrected_answer"}
    assert not Annotation.objects.exists()
    assert ReviewItem.objects.get(pk=item.pk).status == ReviewItem.Status.CLAIMED  # still the reviewer's


def test_an_override_with_a_reason_goes_to_a_lead_not_into_training_data(item, reviewer, lead, policy):
    policy(second=0.0)  # without the override this would be approved on submit
    annotation = submit(
        item,
        reviewer,
        corrected_steps=[{"text": "42 - 8 = 35", "strategy": "deduction"}],
        corrected_answer="35",
        override_reason="the prompt says eight and one, I added both",
    )
    assert annotation.status == Annotation.Status.SUBMITTED
    assert annotation.check_problems["corrected_steps"] == ["step 1: 42 - 8 = 35 is not right"]
    assert retrain_services.training_samples_collect() == 0
    services.annotation_approve(annotation_id=annotation.pk, reviewer=lead)
    assert retrain_services.training_samples_collect() == 3


def test_twins_that_give_the_same_value_agree(product_app, reviewer, make_user, policy):
    policy(double=1.0)
    otto = make_user("otto")
    item = make_item(product_app)
    first = submit(item, reviewer, corrected_answer="34")
    second = submit(item, otto, corrected_answer="The answer is 34.0")
    first.refresh_from_db()
    assert first.status == Annotation.Status.APPROVED and second.status == Annotation.Status.SUPERSEDED


def test_twins_whose_values_differ_are_disputed(product_app, reviewer, make_user, policy):
    policy(double=1.0)
    otto = make_user("otto")
    item = make_item(product_app)
    first = submit(item, reviewer)
    # a checked correction of another reading: the same error at the same step, another value
    steps = [{"text": "42 - 9 = 33", "strategy": "deduction"}]
    second = submit(item, otto, corrected_steps=steps, corrected_answer="33")
    first.refresh_from_db()
    assert first.status == second.status == Annotation.Status.DISPUTED


def test_a_lead_withdraws_an_approved_annotation_and_the_next_version_leaves_it_out(
    product_app, reviewer, lead, make_user, policy
):
    policy(second=0.0)
    # two prompts of the training split (a held-out prompt never enters a dataset)
    first_prompt, second_prompt = workload.problems(2, seed=5, split="train")
    kept = submit(make_item(product_app, prompt=first_prompt.prompt), reviewer)
    bad = submit(make_item(product_app, prompt=second_prompt.prompt), reviewer)
    first = retrain_services.dataset_version_build(period="2026-09")
    assert first.counts["reflection"] == 2
    with pytest.raises(ApplicationError) as exc:
        services.annotation_withdraw(annotation_id=bad.pk, lead=make_user("otto"), reason="wrong")
    assert exc.value.code == "forbidden"
    with pytest.raises(ApplicationError) as exc:
        services.annotation_withdraw(annotation_id=bad.pk, lead=lead, reason="  ")
    assert exc.value.code == "validation_error"
    services.annotation_withdraw(annotation_id=bad.pk, lead=lead, reason="the reviewer misread the prompt")
    bad.refresh_from_db()
    assert bad.status == Annotation.Status.WITHDRAWN and bad.withdrawn_by == lead
    assert AuditEvent.objects.filter(action="withdraw", annotation=bad).exists()
    second = retrain_services.dataset_version_build(period="2026-10")
    assert second.counts["reflection"] == 1
    assert second.composition["withdrawn"] == {"samples": 3, "annotations": [bad.pk]}
    assert not second.samples.filter(source_annotation=bad).exists()
    assert second.samples.filter(source_annotation=kept).count() == 3
    assert TrainingSample.objects.filter(source_annotation=bad).count() == 3  # history is kept
    assert first.samples.filter(source_annotation=bad).count() == 3  # versions are immutable
    with pytest.raises(ApplicationError) as exc:
        services.annotation_withdraw(annotation_id=bad.pk, lead=lead, reason="again")
    assert exc.value.code == "not_withdrawable"
