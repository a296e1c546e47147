"""Capture precision and recall from reviewers' verdicts on low-score captures and audits."""

import pytest

from annotation import selectors
from feedback.models import CapturePolicy, ReviewItem
from inference import services as inference_services
from tests.annotation.factories import submit

LOW = "Step 1 [deduction]: 42 - 8 = 50\n</think>\n\nThe answer is 50."
HIGH = "Step 1 [deduction]: 42 - 8 = 34\n</think>\n\nThe answer is 34."


def test_precision_from_judged_captures_and_recall_with_misses_from_the_audit_sample(
    product_app, reviewer, policy
):
    policy(second=0.0)
    assert selectors.capture_quality()["precision"] is None
    low = [
        inference_services.output_create(
            app=product_app, prompt=f"Start with 42. Take away 8. Case {i}.", raw_text=LOW
        )
        for i in range(4)
    ]
    CapturePolicy.objects.update(audit_share=1.0)  # every high score is audited
    high = [
        inference_services.output_create(
            app=product_app, prompt=f"Start with 42. Subtract 8. Case {i}.", raw_text=HIGH
        )
        for i in range(4)
    ]
    assert {o.review_item.reason for o in low} == {ReviewItem.Reason.LOW_SCORE}
    assert {o.review_item.reason for o in high} == {ReviewItem.Reason.AUDIT_SAMPLE}
    # reviewers: 3 of 4 low-score captures were wrong; 1 of 4 audited answers was wrong
    for output in low[:3]:
        submit(output.review_item, reviewer)
    submit(low[3].review_item, reviewer, error_type="none")
    submit(high[0].review_item, reviewer, error_type="arithmetic")
    for output in high[1:]:
        submit(output.review_item, reviewer, error_type="none")
    quality = selectors.capture_quality()
    assert quality["judged"] == 4 and quality["audited"] == 4
    assert quality["precision"] == pytest.approx(0.75)
    # found 0.75 * 4 captured = 3, missed 0.25 * 4 let through = 1: recall 3 / 4
    assert quality["recall"] == pytest.approx(0.75)
