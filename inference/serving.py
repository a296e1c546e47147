"""The model a serving process answers with, and how it follows the registry.

Each serving process holds one ``ModelSlot``. A watcher thread compares the slot's
version with the registry's active ModelVersion every MODEL_WATCH_INTERVAL seconds; on a
change it loads the new version in the background, verifies its sha256 manifest, runs a
smoke generation, and only then swaps the slot. A version that fails any check is refused
and the old model keeps serving; a process that has no model yet serves the last good
(retired) version instead. A refused version is tried again with backoff (30 s doubling to
10 min): a file copied back, a full disk freed or a GPU released heals without a restart. Polling the database works the same in embedded and
production mode; a Redis pub/sub push can shorten the delay without changing this contract.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import close_old_connections

from cogloop import metrics
from cogloop.errors import ApplicationError
from inference.engine import loading
from inference.engine.batcher import BatcherConfig, DynamicBatcher
from inference.engine.generation import (
    GenerationParams,
    LoadedModel,
    ModelSlot,
    generate_batch,
    run_on_own_thread,
)
from inference.models import ModelVersion
from inference.store import SWAP_CHANNEL, store_path

log = logging.getLogger("cogloop.inference")

SLOT = ModelSlot()
_load_lock = threading.Lock()
REFUSAL_RETRY_FIRST_S = 30.0
REFUSAL_RETRY_MAX_S = 600.0


@dataclass
class _Refusal:
    reason: str
    failures: int
    retry_at: float  # time.monotonic()


_refused: dict[int, _Refusal] = {}  # version id -> why it was refused and when to try again
SMOKE_PROMPT = "Start with 12. Add 3. What is the result?"


@dataclass(frozen=True)
class ServedText:
    text: str
    version_id: int | None
    latency_ms: int
    prompt_tokens: int
    completion_tokens: int
    meta: dict | None = None  # the metacognition head's reading
    model_confidence: float | None = None  # from the answer tokens' log-probabilities


def load_version(version: ModelVersion) -> LoadedModel:
    """Load, verify and smoke-test a version. Raises loading.ArtifactError when unsafe.

    The torch work runs on a thread of its own, never on the caller's: the callers (the
    watcher, the Redis listener, a request thread) live on, and a thread that has run torch
    ops keeps an OpenMP team that slows every batch the batcher runs (see run_on_own_thread).
    """
    path = store_path(version.weights_path)
    return run_on_own_thread(_load_verified, version.pk, version.name, path, version.manifest)


def _load_verified(version_id: int, name: str, path, manifest: dict) -> LoadedModel:
    # The head's module imports torch at its top; only a process that loads a model needs it.
    from inference.engine.metahead import MetaHead, MetaHeadConfig, load_head

    c = settings.COGLOOP
    model, tokenizer = loading.load_model(
        path, expected_manifest=manifest, device=c["SERVE_DEVICE"], dtype=c["SERVE_DTYPE"]
    )
    # A version without a trained head still gets one, untrained: it predicts step strategies
    # and reports its confidence as absent rather than as a number. In float32 beside the model,
    # so it reads generation's states where they are.
    device = next(model.parameters()).device
    head = (load_head(path) or MetaHead(MetaHeadConfig.for_hidden(model.config.hidden_size))).to(device)
    head.eval()
    smoke = generate_batch(model, tokenizer, [SMOKE_PROMPT], GenerationParams(max_new_tokens=8))
    if not smoke or smoke[0].completion_tokens == 0:
        raise loading.ArtifactError(f"{name} produced nothing on the smoke prompt")
    return LoadedModel(version_id=version_id, model=model, tokenizer=tokenizer, head=head)


def sync_with_registry() -> int | None:
    """Swap to the active version if the slot holds another one. Returns the slot's version.
    A process of a model-free role (web, beat) never loads one: None."""
    if settings.COGLOOP_ROLE in settings.MODEL_FREE_ROLES:
        return None
    with _load_lock:
        active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
        current = SLOT.current
        if active is None or (current and current.version_id == active.pk):
            return current.version_id if current else None
        if _load_and_swap(active):
            return active.pk
        if current is None:  # nothing to answer with: the last good version beats none
            for fallback in ModelVersion.objects.filter(status=ModelVersion.Status.RETIRED).order_by(
                "-promoted_at"
            )[:3]:
                if _load_and_swap(fallback):
                    log.error(
                        "active version %s cannot load; serving %s until it can", active.name, fallback.name
                    )
                    return fallback.pk
        return current.version_id if current else None


def _load_and_swap(version: ModelVersion) -> bool:
    """Load, verify and swap to ``version`` unless it was refused and its retry is not due."""
    refusal = _refused.get(version.pk)
    if refusal and time.monotonic() < refusal.retry_at:
        return False
    started = time.monotonic()
    try:
        loaded = load_version(version)
    except Exception as exc:  # any failure keeps the old model serving
        failures = refusal.failures + 1 if refusal else 1
        delay = min(REFUSAL_RETRY_FIRST_S * 2 ** (failures - 1), REFUSAL_RETRY_MAX_S)
        _refused[version.pk] = _Refusal(str(exc), failures, time.monotonic() + delay)
        log.error("refused model version %s (retry in %.0fs): %s", version.name, delay, exc)
        return False
    _refused.pop(version.pk, None)
    SLOT.swap(loaded)
    log.info("serving %s (swap took %.2fs)", version.name, time.monotonic() - started)
    return True


def refusal_reason(version_id: int) -> str | None:
    refusal = _refused.get(version_id)
    return refusal.reason if refusal else None


def _watch(interval: float) -> None:
    while True:
        time.sleep(interval)
        try:
            close_old_connections()
            sync_with_registry()
        except Exception:  # the watcher must outlive a database hiccup
            log.exception("model watcher iteration failed")


_watcher: threading.Thread | None = None


def _listen() -> None:
    """Swap as soon as a promotion is announced on Redis (production); polling stays the backstop."""
    while True:
        try:
            pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(SWAP_CHANNEL)
            for message in pubsub.listen():
                if message.get("type") == "message":
                    close_old_connections()
                    sync_with_registry()
        except Exception:
            log.warning("model swap listener lost Redis; retrying in 5s", exc_info=True)
            time.sleep(5)


def start_watcher() -> None:
    """Follow the registry from daemon threads (serving entry points call this; tests do not)."""
    global _watcher
    if _watcher is None and settings.MODEL_WATCH_INTERVAL > 0:
        _watcher = threading.Thread(
            target=_watch, args=(settings.MODEL_WATCH_INTERVAL,), name="model-watcher", daemon=True
        )
        _watcher.start()
        if settings.REDIS_URL:
            threading.Thread(target=_listen, name="model-swap-listener", daemon=True).start()


_batcher = None


def batcher():
    """The process's dynamic batcher over SLOT (created on first use)."""
    global _batcher
    if _batcher is None:
        c = settings.COGLOOP
        # One intra-op thread unless configured: a spinning OpenMP team collapses on cores that
        # other processes (or a CPU quota) take away (BatcherConfig.intra_op_threads). Machines
        # with cores of their own for a large model should raise it.
        _batcher = DynamicBatcher(
            SLOT,
            BatcherConfig(
                simple_max_batch=c["BATCH_SIMPLE_MAX"],
                complex_max_batch=c["BATCH_COMPLEX_MAX"],
                max_wait_ms=c["BATCH_MAX_WAIT_MS"],
                intra_op_threads=c.get("BATCH_INTRA_OP_THREADS", 1),
            ),
            on_batch=metrics.observe_batch,
        )
    return _batcher


def _require_model() -> None:
    if settings.COGLOOP_ROLE in settings.MODEL_FREE_ROLES:
        raise ApplicationError(
            f"generation is served by the inference role, not this {settings.COGLOOP_ROLE} process",
            code="no_model",
            status=503,
        )
    if SLOT.current is None:
        sync_with_registry()
    if SLOT.current is None:
        raise ApplicationError("no model is being served", code="no_model", status=503)


def _served(result, started: float) -> ServedText:
    metrics.observe_queue_wait(result.queued_ms / 1000)
    return ServedText(
        text=result.generation.text,
        version_id=result.version_id,
        latency_ms=int((time.monotonic() - started) * 1000),
        prompt_tokens=result.generation.prompt_tokens,
        completion_tokens=result.generation.completion_tokens,
        meta=result.meta,
        model_confidence=result.generation.confidence,
    )


def generate(prompt: str, *, max_new_tokens: int, temperature: float) -> ServedText:
    """Submit to the batcher and wait; the result names the version that generated it."""
    _require_model()
    started = time.monotonic()
    result = batcher().generate(
        prompt,
        GenerationParams(max_new_tokens=max_new_tokens, temperature=temperature),
        timeout=settings.COGLOOP["GENERATE_TIMEOUT_S"],
    )
    return _served(result, started)


def generate_samples(
    prompt: str, *, n: int, max_new_tokens: int, temperature: float, top_p: float
) -> list[ServedText]:
    """``n`` sampled answers to one prompt, generated together in one batch (a sample group)."""
    _require_model()
    started = time.monotonic()
    results = batcher().generate_group(
        prompt,
        GenerationParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p),
        n,
        timeout=settings.COGLOOP["GENERATE_TIMEOUT_S"],
    )
    return [_served(result, started) for result in results]


def reset_unsafe() -> None:
    """Forget the loaded model and refusals (tests only: a serving process never needs it)."""
    with _load_lock:
        SLOT._current = None
        _refused.clear()
