"""Daily roll-ups of the dashboards' reads, so that a window of a year costs a few hundred rows
instead of every output, review item and annotation in it.

One local day (the dashboards' time zone) is recomputed at a time, from the raw tables, by
``ops.services.rollup_day_recompute``; a ``RollupDay`` row says that day's roll-ups exist and
when they were made. The pages read roll-ups only for whole closed days that have one and read
everything else (today, a window's partial first day, a day not rolled up yet, a day changed
since its roll-up) from the raw tables, so the numbers are the same either way.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from inference.models import ModelVersion, ProductApp


class RollupDay(models.Model):
    """One local day whose roll-ups below are complete as of ``computed_at``."""

    day = models.DateField(unique=True)
    computed_at = models.DateTimeField()
    # The capture threshold DailyOutputStats.n_low was counted below; a page asking for another
    # threshold reads that day raw until the refresh recomputes it.
    low_below = models.FloatField()

    def __str__(self) -> str:
        return f"roll-up of {self.day} at {self.computed_at:%Y-%m-%d %H:%M}"


class RollupState(models.Model):
    """One row (pk=1): audit events up to ``audit_cursor`` have had the days they changed
    recomputed. A page treats days named by later events as changed and reads them raw."""

    audit_cursor = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"roll-ups seen audit events up to {self.audit_cursor}"


class DailyOutputStats(models.Model):
    """Outputs of one local day, app, model version and score bin (width 1 / SCORE_BINS): the
    cognition page's GROUP BY, kept. Means are sums here; the page divides."""

    day = models.DateField()
    app = models.ForeignKey(ProductApp, on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey(ModelVersion, null=True, on_delete=models.CASCADE, related_name="+")
    bin = models.PositiveSmallIntegerField()
    n = models.PositiveIntegerField()
    score = models.FloatField()
    consistency = models.FloatField()
    adaptability = models.FloatField()
    confidence = models.FloatField()
    n_confidence = models.PositiveIntegerField()
    n_low = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["day", "model_version"], name="daily_output_day_version")]

    def __str__(self) -> str:
        return f"{self.day} version {self.model_version_id} bin {self.bin}: {self.n}"


class DailyReviewStats(models.Model):
    """Review items created on one local day, by capture reason and current status."""

    day = models.DateField()
    reason = models.CharField(max_length=20)
    status = models.CharField(max_length=20)
    n = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["day"], name="daily_review_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.reason}/{self.status}: {self.n}"


class DailyAnnotationStats(models.Model):
    """Annotations created on one local day, by annotator and the attributes the reviewer and
    capture pages count (status, transparency verdict, second review, the item's capture reason,
    whether the reviewer found an error)."""

    day = models.DateField()
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=20)
    transparent = models.BooleanField()
    second_reviewed = models.BooleanField()
    item_reason = models.CharField(max_length=20)
    wrong = models.BooleanField()
    n = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["day"], name="daily_annotation_day")]

    def __str__(self) -> str:
        return f"{self.day} annotator {self.annotator_id} {self.status}: {self.n}"
