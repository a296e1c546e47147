"""The demo's simulated review team closes the loop through the pages under any review policy."""

import pytest

from annotation.models import Annotation
from demo import simulation
from feedback.models import ReviewItem
from inference import services as inference_services
from inference.engine import workload
from retrain import services as retrain_services
from retrain.models import TrainingSample


@pytest.mark.parametrize("second, double", [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5)])
def test_simulated_team_annotates_everything_and_every_item_becomes_training_data_once(
    product_app, django_user_model, policy, second, double
):
    policy(second=second, double=double)
    problems = workload.problems(6, seed=5, split="train")
    for p in problems:
        inference_services.output_create(
            app=product_app,
            prompt=p.prompt,
            raw_text="Step 1 [deduction]: 1 + 1 = 3\n</think>\n\nThe answer is 3.",
        )
    django_user_model.objects.create_user(username="sim", password="sim-review-1")

    assert simulation.review_queue("sim", "sim-review-1") == 6

    assert set(ReviewItem.objects.values_list("status", flat=True)) == {ReviewItem.Status.ANNOTATED}
    approved = Annotation.objects.filter(status=Annotation.Status.APPROVED)
    assert approved.count() == 6 and len({a.review_item_id for a in approved}) == 6
    if double == 1.0:
        assert Annotation.objects.filter(status=Annotation.Status.SUPERSEDED).count() == 6
    if second == 1.0:
        assert set(approved.values_list("second_reviewer__username", flat=True)) == {"sim-lead"}
    retrain_services.training_samples_collect()
    assert TrainingSample.objects.filter(kind="reflection").count() == 6
