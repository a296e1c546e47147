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


class EvalSet(models.Model):
    """A named evaluation set: global (no app) or a product app's own (its golden set)."""

    name = models.CharField(max_length=100)
    app = models.ForeignKey(
        "inference.ProductApp", null=True, blank=True, on_delete=models.CASCADE, related_name="eval_sets"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "app"], name="eval_set_unique_per_app"),
            # NULLs are distinct in a unique constraint: global names need their own.
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(app__isnull=True), name="eval_set_unique_global"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.app.name if self.app_id else 'global'})"


class EvalSetVersion(models.Model):
    """One immutable content of an eval set: written once with its items, never updated."""

    class Source(models.TextChoices):
        IMPORT = "import"
        REVIEW = "review"
        EMBEDDED = "embedded"

    eval_set = models.ForeignKey(EvalSet, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)  # of the canonical items (retrain.services.evalsets)
    item_count = models.PositiveIntegerField()
    source = models.CharField(max_length=20, choices=Source.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["eval_set", "number"], name="eval_set_version_unique")]

    def __str__(self) -> str:
        return f"{self.eval_set} v{self.number}"


class EvalItem(models.Model):
    version = models.ForeignKey(EvalSetVersion, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    prompt = models.TextField()
    answer = models.TextField()  # the reference answer: a number, as text
    solution = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "position"], name="eval_item_position_unique")
        ]

    def __str__(self) -> str:
        return f"{self.version} #{self.position}"
