from django.db import models

from annotation.models import Annotation
from inference.models import ModelVersion


class TrainingSample(models.Model):
    class Kind(models.TextChoices):
        REFLECTION = "reflection"
        STRATEGY = "strategy"
        UNCERTAINTY = "uncertainty"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    payload = models.JSONField()
    source_annotation = models.ForeignKey(
        Annotation, on_delete=models.PROTECT, related_name="training_samples"
    )
    content_hash = models.CharField(max_length=64)
    split = models.CharField(max_length=10, default="train")  # stable, by hash of the prompt
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "content_hash"], name="training_sample_unique")
        ]

    def __str__(self) -> str:
        return f"{self.kind} sample {self.pk}"


class DatasetVersion(models.Model):
    period = models.CharField(max_length=7, unique=True)  # YYYY-MM
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT)
    samples = models.ManyToManyField(TrainingSample, related_name="dataset_versions")
    counts = models.JSONField(default=dict)  # samples per kind
    # strategy_steps, error_types, held_out_excluded (samples of held-out prompts), carried_over
    composition = models.JSONField(default=dict)
    growth = models.FloatField(null=True, blank=True)
    sha256 = models.CharField(max_length=64)
    files = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"dataset {self.period}"


class TrainingRun(models.Model):
    class Stage(models.TextChoices):
        QUEUED = "queued"
        BASELINE = "baseline_evaluation"
        TRAINING = "training"
        COMPRESS = "compress"
        CANDIDATE = "candidate_evaluation"
        GATE = "gate"
        DONE = "done"
        FAILED = "failed"

    period = models.CharField(max_length=20, unique=True)  # YYYY-Qn
    dataset = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="training_runs")
    base_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    recipe = models.CharField(max_length=20)
    config = models.JSONField(default=dict)
    stage = models.CharField(max_length=30, choices=Stage.choices, default=Stage.QUEUED)
    progress = models.JSONField(default=dict)
    loss_history = models.JSONField(default=list)
    lease_owner = models.CharField(max_length=100, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    decision = models.JSONField(default=dict)
    result_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # A failed or rejected run is retried in its period: the attempt counts up and what each
    # earlier attempt did (stage, decision, error, candidate, config) is kept in ``history``.
    attempt = models.PositiveSmallIntegerField(default=1)
    history = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"training run {self.period} ({self.stage})"


class Evaluation(models.Model):
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="evaluations")
    training_run = models.ForeignKey(
        TrainingRun, null=True, on_delete=models.SET_NULL, related_name="evaluations"
    )
    eval_set = models.CharField(max_length=100)
    metrics = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"evaluation of {self.model_version_id} on {self.eval_set}"
