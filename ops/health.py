"""Health, readiness and Prometheus metrics views.

/healthz  the process answers (no dependencies checked).
/readyz   what this process's role needs (settings.COGLOOP_ROLE), 503 with the failing check
          named otherwise:
            web        the database answers. It never loads a model and does not look at one.
            inference  the database answers and this process serves a model (the watcher
                       loads the active one; the first probe loads it if the watcher has not).
            all        (embedded: one process is every role) both.
          Redis (broker, cache, swap events) is reported but does not fail readiness: without
          it the API still answers (feedback waits in the outbox, the throttle counts per
          process, serving follows the registry by polling), so taking the process out of
          rotation would turn a degraded service into no service. Alert on ``checks.redis``.
/metrics  Prometheus text: request latency, generation batch sizes and queue wait, tokens,
          captures, reviews, review queue depth, training progress, cognition scores, the
          active model version (instruments in cogloop.metrics). Added up over every process
          of the container in multiprocess mode (PROMETHEUS_MULTIPROC_DIR). Inside the network
          only: the proxy does not route it.
"""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST

from cogloop.metrics import ACTIVE_MODEL, QUEUE_DEPTH, TRAINING_PROGRESS, exposition
from feedback.models import ReviewItem
from inference import serving
from inference.models import ModelVersion
from retrain.models import TrainingRun

# Roles whose readiness includes a loaded model.
SERVING_ROLES = ("inference", "all")


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    if settings.COGLOOP_ROLE in SERVING_ROLES:
        try:
            version_id = (
                serving.SLOT.current.version_id if serving.SLOT.current else serving.sync_with_registry()
            )
            checks["model"] = "ok" if version_id else "no model loaded"
        except Exception as exc:
            checks["model"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    if settings.REDIS_URL:
        checks["redis"] = _redis_check()
    return JsonResponse(
        {"ready": ready, "role": settings.COGLOOP_ROLE, "checks": checks}, status=200 if ready else 503
    )


def _redis_check() -> str:
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"[:200]
    return "ok"


_served_name: str | None = None


def metrics(request: HttpRequest) -> HttpResponse:
    global _served_name
    for status in ReviewItem.Status.values:
        QUEUE_DEPTH.labels(status).set(0)
    for row in ReviewItem.objects.values("status").annotate(n=Count("pk")):
        QUEUE_DEPTH.labels(row["status"]).set(row["n"])
    run = TrainingRun.objects.order_by("-created_at", "-pk").first()
    if run is not None:
        TRAINING_PROGRESS.labels(run.period, run.stage).set(_training_share(run))
    current = serving.SLOT.current
    name = None
    if current is not None:
        name = ModelVersion.objects.filter(pk=current.version_id).values_list("name", flat=True).first()
        name = name or str(current.version_id)
    # Set to 0 rather than cleared: in multiprocess mode a cleared series lingers in its file.
    if _served_name and _served_name != name:
        ACTIVE_MODEL.labels(_served_name).set(0)
    if name:
        ACTIVE_MODEL.labels(name).set(1)
    _served_name = name
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


def _training_share(run: TrainingRun) -> float:
    if run.stage == TrainingRun.Stage.DONE:
        return 1.0
    progress = run.progress or {}
    step, total = progress.get("step"), progress.get("max_steps")
    if isinstance(step, int | float) and isinstance(total, int | float) and total:
        return max(0.0, min(1.0, step / total))
    return 0.0
