import uuid

from django.db import models


class ProductApp(models.Model):
    """A product that calls Cogloop. Owns API keys; every object it reaches is scoped to it."""

    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """An API key, stored as sha256 of its secret part; the full key is shown once."""

    app = models.ForeignKey(ProductApp, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    hashed_secret = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.app.name}: {self.prefix}…"


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        CANDIDATE = "candidate"
        ACTIVE = "active"
        RETIRED = "retired"
        REJECTED = "rejected"

    name = models.CharField(max_length=100, unique=True)
    base_model_path = models.CharField(max_length=500)
    # Relative to settings.MODEL_STORE: the directory serving loads (merged weights).
    weights_path = models.CharField(max_length=500)
    meta_head_path = models.CharField(max_length=500, blank=True)
    manifest = models.JSONField(default=dict)
    sha256 = models.CharField(max_length=64)
    recipe = models.CharField(max_length=50, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CANDIDATE)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    promoted_at = models.DateTimeField(null=True, blank=True)
    promotion_history = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="active"), name="one_active_model_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class Output(models.Model):
    """One answer of the model (served here or made elsewhere), parsed and scored."""

    class Source(models.TextChoices):
        GENERATED = "generated"
        EXTERNAL = "external"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    app = models.ForeignKey(ProductApp, on_delete=models.CASCADE, related_name="outputs")
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.GENERATED)
    prompt = models.TextField()
    raw_text = models.TextField()
    reasoning = models.TextField(blank=True)
    steps = models.JSONField(default=list)
    answer = models.TextField(blank=True)
    cognition_score = models.FloatField()
    consistency = models.FloatField()
    adaptability = models.FloatField()
    score_parts = models.JSONField(default=dict)
    # The model's own confidence in its answer, from the answer tokens' log-probabilities
    # (inference.engine.confidence); the metacognition head's, read from hidden states.
    model_confidence = models.FloatField(null=True, blank=True)
    head_confidence = models.FloatField(null=True, blank=True)
    # Answers to one prompt sampled together share a group (self-consistency); NULL alone.
    sample_group = models.UUIDField(null=True, blank=True, db_index=True)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="outputs"
    )
    latency_ms = models.IntegerField(null=True, blank=True)
    prompt_tokens = models.IntegerField(null=True, blank=True)
    completion_tokens = models.IntegerField(null=True, blank=True)
    # NULL, not "": rows without a key must not collide in the unique constraint.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    # sha256 of the request that made the output (without its key): the same key with another
    # body is refused. Empty on outputs made before it was recorded, which replay unchecked.
    request_hash = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "idempotency_key"], name="output_idempotency_per_app")
        ]
        indexes = [
            models.Index(fields=["app", "-created_at"]),
            models.Index(fields=["cognition_score"]),
            # The dashboards' time-bucketed aggregations read only these columns: with them
            # in the index PostgreSQL answers from the index alone (an index-only scan).
            models.Index(
                fields=["created_at"],
                include=[
                    "model_version",
                    "cognition_score",
                    "consistency",
                    "adaptability",
                    "head_confidence",
                ],
                name="output_created_scores",
            ),
        ]

    def __str__(self) -> str:
        return str(self.uuid)
