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
    # NULL, not "": rows without a key must not collide in the unique constraint.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    # sha256 of the canonical request body: a replayed key with another body is a conflict.
    request_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When the capture policy ran on it (feedback.feedback_apply_capture). NULL until then: the
    # reconcile captures feedback whose message was lost on the way.
    captured_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "idempotency_key"], name="feedback_idempotency_per_app"),
            models.CheckConstraint(
                condition=models.Q(rating__isnull=True) | models.Q(rating__gte=1, rating__lte=5),
                name="feedback_rating_1_to_5",
            ),
        ]
        indexes = [
            models.Index(fields=["app", "-created_at"]),
            # the reconcile's scan: only the few rows not yet captured are in it
            models.Index(
                fields=["created_at"],
                condition=models.Q(captured_at__isnull=True),
                name="feedback_uncaptured",
            ),
        ]

    def __str__(self) -> str:
        return f"Feedback {self.pk} on output {self.output_id}"


class CapturePolicy(models.Model):
    """Which outputs go to review. One row (pk=1), edited by admins in the Django admin."""

    score_below = models.FloatField(
        default=0.6, help_text="capture outputs with a cognition score below this"
    )
    rating_at_or_below = models.PositiveSmallIntegerField(
        default=2, help_text="capture ratings at or below (1-5)"
    )
    capture_thumb_down = models.BooleanField(default=True)
    capture_flags = models.JSONField(
        default=list,
        blank=True,
        help_text='flags that always capture, e.g. ["wrong", "unsafe"]; empty = any flag',
    )
    audit_share = models.FloatField(default=0.02, help_text="share of high-score outputs sampled for audit")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "capture policy"

    def __str__(self) -> str:
        return "capture policy"


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
    # Queue order: lowest priority first, then the oldest. priority = min(cognition score,
    # (worst rating - 1) / 4), so the weakest answers and the worst-rated go first.
    priority = models.FloatField(db_index=True)
    # Normalised prompt: an open item with the same fingerprint means a near-duplicate.
    prompt_fingerprint = models.CharField(max_length=64, db_index=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="claimed_items",
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # 2 when the item is annotated twice blind (agreement measurement); set at the first submit.
    annotations_wanted = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "priority", "created_at"]),
            models.Index(fields=["claimed_by", "status"], name="reviewitem_claimed_by_status"),
            # the capture dashboard's windows: counted by day and reason from the index alone
            models.Index(fields=["created_at"], include=["reason"], name="reviewitem_created_reason"),
        ]

    def __str__(self) -> str:
        return f"ReviewItem {self.pk} ({self.reason}, {self.status})"
