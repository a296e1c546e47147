"""Review items and annotations made through the real services."""

from annotation import services
from inference import services as inference_services

WRONG = "Step 1 [deduction]: 42 - 8 = 50\nStep 2 [induction]: so it is 50\n</think>\n\nThe answer is 50."
PROMPT = "Start with 42. Take away 8. What is the result?"


def make_item(app, *, prompt: str = PROMPT, raw_text: str = WRONG):
    return inference_services.output_create(app=app, prompt=prompt, raw_text=raw_text).review_item


def submit(item, user, **overrides):
    """Claim ``item`` as ``user`` and submit a valid correction (fields overridable)."""
    services.review_claim(item_id=item.pk, user=user)
    fields = {
        "corrected_steps": [{"text": "42 - 8 = 34", "strategy": "deduction"}],
        "corrected_answer": "The answer is 34.",
        "error_type": "arithmetic",
        "first_wrong_step": 1,
        "confidence_low": 0.8,
        "confidence_high": 0.95,
        "transparent": True,
        "correction_strategy": "take away means subtract",
    }
    fields.update(overrides)
    return services.annotation_submit(item_id=item.pk, annotator=user, **fields)
