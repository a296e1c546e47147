"""Annotations: submit a correction for a claimed review item."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from annotation.models import Annotation, AuditEvent
from cogloop.errors import ApplicationError
from feedback import services as feedback_services
from feedback.models import ReviewItem

STRATEGIES = {"induction", "deduction", "analogy", "other"}


def audit(*, actor, action: str, review_item=None, annotation=None, **detail) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor, action=action, review_item=review_item, annotation=annotation, detail=detail
    )


def _validate(*, corrected_steps, confidence_low, confidence_high, error_type, first_wrong_step) -> None:
    errors: dict[str, list[str]] = {}
    if not corrected_steps:
        errors["corrected_steps"] = ["at least one corrected step is required"]
    for i, step in enumerate(corrected_steps, start=1):
        if not str(step.get("text", "")).strip():
            errors.setdefault("corrected_steps", []).append(f"step {i} is empty")
        if step.get("strategy") not in STRATEGIES:
            errors.setdefault("corrected_steps", []).append(f"step {i} has no valid strategy")
    if not (0.0 <= confidence_low <= 1.0):
        errors["confidence_low"] = ["must lie in [0, 1]"]
    if not (0.0 <= confidence_high <= 1.0):
        errors["confidence_high"] = ["must lie in [0, 1]"]
    if confidence_low > confidence_high:
        errors["confidence_low"] = ["must not exceed confidence_high"]
    if error_type not in Annotation.ErrorType.values:
        errors["error_type"] = ["unknown error type"]
    if first_wrong_step is not None and first_wrong_step < 1:
        errors["first_wrong_step"] = ["steps are numbered from 1"]
    if errors:
        raise ApplicationError("the annotation is invalid", code="validation_error", extra={"fields": errors})


@transaction.atomic
def annotation_submit(
    *,
    item_id: int,
    annotator,
    corrected_steps: list[dict],
    corrected_answer: str,
    error_type: str,
    confidence_low: float,
    confidence_high: float,
    transparent: bool,
    first_wrong_step: int | None = None,
    correction_strategy: str = "",
) -> Annotation:
    """Store a reviewer's correction. Requires a live lease held by the annotator.

    With ANNOTATION_SECOND_REVIEW_SHARE at 0 (the default until second review exists) an
    annotation is approved on submit.
    """
    item = ReviewItem.objects.select_for_update().get(pk=item_id)
    feedback_services.review_item_require_lease(item=item, user=annotator)
    _validate(
        corrected_steps=corrected_steps,
        confidence_low=confidence_low,
        confidence_high=confidence_high,
        error_type=error_type,
        first_wrong_step=first_wrong_step,
    )
    approved = getattr(settings, "ANNOTATION_SECOND_REVIEW_SHARE", 0.0) == 0.0
    annotation = Annotation.objects.create(
        review_item=item,
        annotator=annotator,
        corrected_steps=[{"text": s["text"].strip(), "strategy": s["strategy"]} for s in corrected_steps],
        corrected_answer=corrected_answer.strip(),
        first_wrong_step=first_wrong_step,
        error_type=error_type,
        correction_strategy=correction_strategy,
        confidence_low=confidence_low,
        confidence_high=confidence_high,
        transparent=transparent,
        status=Annotation.Status.APPROVED if approved else Annotation.Status.SUBMITTED,
    )
    feedback_services.review_item_mark_annotated(item=item)
    audit(actor=annotator, action="submit", review_item=item, annotation=annotation)
    if approved:
        audit(actor=None, action="approve", review_item=item, annotation=annotation, rule="no second review configured")
    return annotation
