from django.conf import settings
from django.db import models

from feedback.models import ReviewItem

STRATEGY_CHOICES = [(s, s) for s in ("induction", "deduction", "analogy", "other")]


class Annotation(models.Model):
    class ErrorType(models.TextChoices):
        ARITHMETIC = "arithmetic", "Arithmetic / wrong claim"
        WRONG_OPERATION = "wrong_operation", "Wrong operation or misread instruction"
        INCONSISTENT_ANSWER = "inconsistent_answer", "Answer contradicts the reasoning"
        MISSING_STEP = "missing_step", "Missing or skipped step"
        UNCLEAR = "unclear", "Reasoning not understandable"
        NONE = "none", "No error"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        SUBMITTED = "submitted"
        APPROVED = "approved"
        REJECTED = "rejected"

    review_item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations")
    corrected_steps = models.JSONField(default=list)  # [{"text": ..., "strategy": ...}]
    corrected_answer = models.TextField()
    first_wrong_step = models.PositiveIntegerField(null=True, blank=True)
    error_type = models.CharField(max_length=30, choices=ErrorType.choices)
    correction_strategy = models.TextField(blank=True)
    confidence_low = models.FloatField()
    confidence_high = models.FloatField()
    transparent = models.BooleanField(help_text="Was the original reasoning understandable?")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SUBMITTED, db_index=True)
    second_reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="second_reviews"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(confidence_low__gte=0, confidence_high__lte=1, confidence_low__lte=models.F("confidence_high")),
                name="annotation_interval_valid",
            )
        ]


class AuditEvent(models.Model):
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=30)
    review_item = models.ForeignKey(ReviewItem, null=True, on_delete=models.SET_NULL)
    annotation = models.ForeignKey(Annotation, null=True, on_delete=models.SET_NULL)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
