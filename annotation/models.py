from django.conf import settings
from django.db import models

from feedback.models import ReviewItem
from inference.engine.parser import STRATEGIES

STRATEGY_CHOICES = [(s, s) for s in STRATEGIES]


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
        # Only APPROVED annotations become training data (retrain.services.training_samples_collect).
        SUBMITTED = "submitted", "Awaiting second review"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        AWAITING_TWIN = "awaiting_twin", "Awaiting its blind twin"
        DISPUTED = "disputed", "Blind twins disagree: a lead decides"
        SUPERSEDED = "superseded", "Superseded by its twin"
        # Approved, then taken back by a lead: the next dataset version leaves its samples out.
        WITHDRAWN = "withdrawn", "Withdrawn by a lead"

    review_item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations"
    )
    corrected_steps = models.JSONField(default=list)  # [{"text": ..., "strategy": ...}]
    corrected_answer = models.TextField()
    first_wrong_step = models.PositiveIntegerField(null=True, blank=True)
    error_type = models.CharField(max_length=30, choices=ErrorType.choices)
    correction_strategy = models.TextField(blank=True)
    confidence_low = models.FloatField()
    confidence_high = models.FloatField()
    transparent = models.BooleanField(help_text="Was the original reasoning understandable?")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SUBMITTED, db_index=True)
    # One of the two independent annotations of an item chosen for double annotation.
    blind = models.BooleanField(default=False)
    second_reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="second_reviews",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    # What the claim checker found wrong in the correction, and the reviewer's reason to keep it
    # anyway (such a correction goes to second review).
    check_problems = models.JSONField(default=dict, blank=True)
    override_reason = models.TextField(blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    withdraw_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    confidence_low__gte=0,
                    confidence_high__lte=1,
                    confidence_low__lte=models.F("confidence_high"),
                ),
                name="annotation_interval_valid",
            )
        ]
        indexes = [
            models.Index(fields=["annotator", "created_at"], name="annotation_annotator_day"),
            models.Index(fields=["second_reviewer", "reviewed_at"], name="annotation_reviewer_day"),
            models.Index(fields=["status", "created_at"], name="annotation_status_created"),
            # the reviewers dashboard's windows, answered from the index alone
            models.Index(
                fields=["created_at"],
                include=["annotator", "status", "transparent", "second_reviewer"],
                name="annotation_created_cover",
            ),
            # the reviewers dashboard's agreement reads every blind pair, a tenth of the table
            # at most: without this it scans all annotations twice
            models.Index(
                fields=["review_item"],
                condition=models.Q(blind=True),
                name="annotation_blind_pairs",
            ),
        ]

    def __str__(self) -> str:
        return f"Annotation {self.pk} of item {self.review_item_id} ({self.status})"


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        CLAIM = "claim"
        RELEASE = "release"
        SUBMIT = "submit"
        APPROVE = "approve"
        REJECT = "reject"
        SUPERSEDE = "supersede"
        REQUEUE = "requeue"
        SETTINGS = "settings"
        WITHDRAW = "withdraw"

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=30, choices=Action.choices)
    review_item = models.ForeignKey(ReviewItem, null=True, on_delete=models.SET_NULL)
    annotation = models.ForeignKey(Annotation, null=True, on_delete=models.SET_NULL)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["actor", "action", "created_at"], name="audit_actor_action_day")]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_id} at {self.created_at:%Y-%m-%d %H:%M}"


class ReviewPolicy(models.Model):
    """How review works. One row (pk=1), edited by leads on the review settings page."""

    second_review_share = models.FloatField(
        default=0.2, help_text="share of annotations a lead reviews before they become training data"
    )
    double_annotation_share = models.FloatField(
        default=0.1, help_text="share of items annotated twice, blind, to measure agreement"
    )
    lease_minutes = models.PositiveSmallIntegerField(default=10, help_text="how long a claim holds an item")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        verbose_name_plural = "review policy"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    second_review_share__gte=0,
                    second_review_share__lte=1,
                    double_annotation_share__gte=0,
                    double_annotation_share__lte=1,
                    lease_minutes__gte=1,
                    lease_minutes__lte=240,
                ),
                name="review_policy_ranges",
            )
        ]

    def __str__(self) -> str:
        return "review policy"
