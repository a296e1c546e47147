"""Health, readiness and Prometheus metrics.

/healthz  the process answers (no dependencies checked).
/readyz   the database answers and this process serves a model (it loads the active one on
          the first probe); 503 with the failing check named otherwise.
/metrics  Prometheus text: request latency, generation batch sizes, review queue depth,
          cognition score histogram, the active model version. Counters are per process;
          behind several gunicorn workers, scrape each worker or set up prometheus_client's
          multiprocess mode (PROMETHEUS_MULTIPROC_DIR).
"""

from __future__ import annotations

import time

from django.db import connection
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

REQUEST_LATENCY = Histogram(
    "cogloop_http_request_seconds",
    "HTTP request latency",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram(
    "cogloop_generation_batch_size", "Requests per generation batch", buckets=(1, 2, 4, 8, 16, 24, 32, 48, 64)
)
BATCH_SECONDS = Histogram(
    "cogloop_generation_batch_seconds",
    "Time to generate one batch",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
COGNITION_SCORE = Histogram(
    "cogloop_cognition_score",
    "Cognition score of stored outputs",
    ["source"],
    buckets=tuple(i / 10 for i in range(1, 11)),
)
OUTPUTS = Counter("cogloop_outputs_total", "Outputs stored", ["source"])
QUEUE_DEPTH = Gauge("cogloop_review_queue_depth", "Review items by status", ["status"])
ACTIVE_MODEL = Gauge("cogloop_active_model_version", "1 for the version this process serves", ["name"])


def observe_batch(size: int, seconds: float) -> None:
    BATCH_SIZE.observe(size)
    BATCH_SECONDS.observe(seconds)


def observe_output(output) -> None:
    """An output-created hook (registered in CogloopConfig.ready)."""
    OUTPUTS.labels(output.source).inc()
    COGNITION_SCORE.labels(output.source).observe(output.cognition_score)


class RequestMetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match else "unmatched"
        REQUEST_LATENCY.labels(request.method, route, response.status_code).observe(
            time.perf_counter() - started
        )
        return response


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    from inference import serving

    try:
        version_id = serving.SLOT.current.version_id if serving.SLOT.current else serving.sync_with_registry()
        checks["model"] = "ok" if version_id else "no model loaded"
    except Exception as exc:
        checks["model"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)


def metrics(request):
    from feedback.models import ReviewItem
    from inference import serving
    from inference.models import ModelVersion

    for status in ReviewItem.Status.values:
        QUEUE_DEPTH.labels(status).set(0)
    from django.db.models import Count

    for row in ReviewItem.objects.values("status").annotate(n=Count("pk")):
        QUEUE_DEPTH.labels(row["status"]).set(row["n"])
    ACTIVE_MODEL.clear()
    current = serving.SLOT.current
    if current is not None:
        name = ModelVersion.objects.filter(pk=current.version_id).values_list("name", flat=True).first()
        ACTIVE_MODEL.labels(name or str(current.version_id)).set(1)
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
