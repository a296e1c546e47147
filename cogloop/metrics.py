"""Bare Prometheus instruments and the request-latency middleware (the kernel's part of metrics).

The apps observe into these; the views that expose them (/metrics, /healthz, /readyz) live in
``ops.health``. Counters are per process; behind several gunicorn workers, scrape each worker
or set up prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR).
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

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
    """An output-created hook (inference registers it in InferenceConfig.ready)."""
    OUTPUTS.labels(output.source).inc()
    COGNITION_SCORE.labels(output.source).observe(output.cognition_score)


# Every label value is a series kept for the process's life: a method a client invents is
# counted as "other", and routes are the resolver's patterns (or "unmatched"), never raw paths.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match else "unmatched"
        method = request.method if request.method in KNOWN_METHODS else "other"
        REQUEST_LATENCY.labels(method, route, response.status_code).observe(time.perf_counter() - started)
        return response
