from django.conf import settings
from django.db import models

from inference.models import Output, ProductApp


class Feedback(models.Model):
    output = models.ForeignKey(Output, on_delete=models.CASCADE, related_name="feedback")
    app = models.ForeignKey(ProductApp, on_delete=models.CASCADE, related_name="feedback")
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    thumb = models.BooleanField(null=True, blank=True)
    comment = models.TextField(blank=True)
    flags = models.JSONField(default=list, blank=True)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "idempotency_key"], name="feedback_idempotency_per_app")
        ]


class ReviewItem(models.Model):
    class Reason(models.TextChoices):
        LOW_SCORE = "low_score"
        LOW_RATING = "low_rating"
        AUDIT_SAMPLE = "audit_sample"
        MANUAL = "manual"

    class Status(models.TextChoices):
        QUEUED = "queued"
        CLAIMED = "claimed"
        ANNOTATED = "annotated"
        SKIPPED = "skipped"

    output = models.OneToOneField(Output, on_delete=models.CASCADE, related_name="review_item")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    reason_detail = models.CharField(max_length=200, blank=True)
    # Lower sorts first: the cognition score, so the weakest answers are reviewed first.
    priority = models.FloatField(db_index=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="claimed_items"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["status", "priority", "created_at"])]

    def __str__(self) -> str:
        return f"ReviewItem {self.pk} ({self.reason}, {self.status})"
