"""Health, readiness and Prometheus metrics views.

/healthz  the process answers (no dependencies checked).
/readyz   the database answers and this process serves a model (it loads the active one on
          the first probe); 503 with the failing check named otherwise. Redis (broker, cache,
          swap events) is reported but does not fail readiness: without it the API still
          answers (feedback waits in the outbox, the throttle counts per process, serving
          follows the registry by polling), so taking the process out of rotation would turn
          a degraded service into no service. Alert on ``checks.redis`` instead.
/metrics  Prometheus text: request latency, generation batch sizes, review queue depth,
          cognition score histogram, the active model version (instruments in cogloop.metrics).
"""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cogloop.metrics import ACTIVE_MODEL, QUEUE_DEPTH
from feedback.models import ReviewItem
from inference import serving
from inference.models import ModelVersion


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
    try:
        version_id = serving.SLOT.current.version_id if serving.SLOT.current else serving.sync_with_registry()
        checks["model"] = "ok" if version_id else "no model loaded"
    except Exception as exc:
        checks["model"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    if settings.REDIS_URL:
        checks["redis"] = _redis_check()
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)


def _redis_check() -> str:
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"[:200]
    return "ok"


def metrics(request: HttpRequest) -> HttpResponse:
    for status in ReviewItem.Status.values:
        QUEUE_DEPTH.labels(status).set(0)
    for row in ReviewItem.objects.values("status").annotate(n=Count("pk")):
        QUEUE_DEPTH.labels(row["status"]).set(row["n"])
    ACTIVE_MODEL.clear()
    current = serving.SLOT.current
    if current is not None:
        name = ModelVersion.objects.filter(pk=current.version_id).values_list("name", flat=True).first()
        ACTIVE_MODEL.labels(name or str(current.version_id)).set(1)
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
