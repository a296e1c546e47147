"""Bare Prometheus instruments and the request-latency middleware (the kernel's part of metrics).

The apps observe into these; the views that expose them (/metrics, /healthz, /readyz) live in
``ops.health``. With PROMETHEUS_MULTIPROC_DIR set (production: every gunicorn worker and every
Celery process of a container writes its samples there; docker/gunicorn.conf.py empties it at
start and marks dead workers), /metrics adds up every process of the container; without it, a
process reports its own.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

# In multiprocess mode every instrument opens a file there when it is created: a one-off command
# (migrate, register) in a fresh container must not fail on a directory nobody made yet.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

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
QUEUE_WAIT = Histogram(
    "cogloop_generation_queue_wait_seconds",
    "Time a generation request waited in the batcher before its batch started",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TOKENS = Counter("cogloop_tokens_total", "Tokens of stored outputs", ["source", "kind"])
COGNITION_SCORE = Histogram(
    "cogloop_cognition_score",
    "Cognition score of stored outputs",
    ["source"],
    buckets=tuple(i / 10 for i in range(1, 11)),
)
OUTPUTS = Counter("cogloop_outputs_total", "Outputs stored", ["source"])
CAPTURES = Counter("cogloop_captures_total", "Outputs captured into the review queue", ["reason"])
REVIEWS = Counter("cogloop_reviews_total", "Review actions: submitted, approved, rejected, ...", ["action"])
# Read from the database at scrape time, so any process answers for the whole install: the most
# recent scrape's value is the value (not a sum over processes).
QUEUE_DEPTH = Gauge(
    "cogloop_review_queue_depth", "Review items by status", ["status"], multiprocess_mode="livemostrecent"
)
TRAINING_PROGRESS = Gauge(
    "cogloop_training_progress",
    "Share of its steps the newest training run has done (0-1), by stage",
    ["period", "stage"],
    multiprocess_mode="livemostrecent",
)
# Per serving process (its pid is a label in multiprocess mode): replicas that disagree for longer
# than a swap takes are worth an alert.
ACTIVE_MODEL = Gauge(
    "cogloop_active_model_version",
    "1 for the version this process serves",
    ["name"],
    multiprocess_mode="liveall",
)


def observe_batch(size: int, seconds: float) -> None:
    BATCH_SIZE.observe(size)
    BATCH_SECONDS.observe(seconds)


def observe_queue_wait(seconds: float) -> None:
    QUEUE_WAIT.observe(seconds)


def observe_output(output) -> None:
    """An output-created hook (inference registers it in InferenceConfig.ready)."""
    OUTPUTS.labels(output.source).inc()
    COGNITION_SCORE.labels(output.source).observe(output.cognition_score)
    if output.prompt_tokens:
        TOKENS.labels(output.source, "prompt").inc(output.prompt_tokens)
    if output.completion_tokens:
        TOKENS.labels(output.source, "completion").inc(output.completion_tokens)


def observe_capture(reason: str) -> None:
    CAPTURES.labels(reason).inc()


def observe_review(action: str) -> None:
    REVIEWS.labels(action).inc()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> bytes:
    """Prometheus text of every process that writes into PROMETHEUS_MULTIPROC_DIR, or of this one."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


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
