"""Every write of the inference app: API keys, the model registry, outputs."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import shutil
import time
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import redis
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from cogloop.errors import ApplicationError
from cogloop.outbox import outbox_enqueue
from inference import hooks, serving
from inference.engine import loading
from inference.engine.agreement import agreement_scores, majority_answer, normalise_answer
from inference.engine.confidence import answer_confidence
from inference.engine.generation import GenerationParams
from inference.engine.parser import ParsedOutput, parse_output
from inference.engine.scoring import ScoreParts, score_output
from inference.models import ApiKey, ModelVersion, Output, ProductApp
from inference.store import SWAP_CHANNEL, store_path

log = logging.getLogger("cogloop.inference")

# The most answers one sample group holds (and the most `n` generation samples at once).
MAX_SAMPLES = 16


def _hash_secret(secret: str) -> str:
    # The secret is 32 random bytes: a plain sha256 is enough (no dictionary to resist).
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def api_key_create(*, app: ProductApp, name: str) -> tuple[ApiKey, str]:
    """Create a key; the returned plaintext ``<prefix>.<secret>`` is never stored."""
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(app=app, name=name, prefix=prefix, hashed_secret=_hash_secret(secret))
    return key, f"cl_{prefix}.{secret}"


@transaction.atomic
def api_key_revoke(*, prefix: str) -> ApiKey:
    """Revoke a key: refused at once by this process, by every other within API_KEY_CACHE_S."""
    key = ApiKey.objects.select_for_update().filter(prefix=prefix).first()
    if key is None:
        raise ApplicationError(f"no API key with prefix {prefix!r}", code="not_found", status=404)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    # Now (a request of this thread reading it next in this transaction sees it revoked) and at
    # commit (a request of another thread may have cached it again meanwhile).
    api_key_forget(prefix=prefix)
    transaction.on_commit(lambda: api_key_forget(prefix=prefix))
    return key


# prefix -> (live key with its app, read at): every API request authenticates, and a key row
# changes only when it is revoked. A process trusts its copy API_KEY_CACHE_S seconds, so a key
# revoked elsewhere stops working everywhere within that bound; the secret is checked against
# the copy's hash on every request.
_api_keys: dict[str, tuple[ApiKey, float]] = {}
_API_KEYS_HELD = 10_000  # a bound on the copies, whatever the callers send
_clock = time.monotonic  # the copies' clock (a test moves it)


def api_key_forget(*, prefix: str | None = None) -> None:
    """Drop this process's copy of one key (after a revocation), or of every key."""
    if prefix is None:
        _api_keys.clear()
    else:
        _api_keys.pop(prefix, None)


def api_key_authenticate(*, raw: str) -> ApiKey | None:
    if not raw.startswith("cl_") or "." not in raw:
        return None
    prefix, _, secret = raw[3:].partition(".")
    now = _clock()
    cached = _api_keys.get(prefix)
    if cached is not None and now - cached[1] < settings.API_KEY_CACHE_S:
        key: ApiKey | None = cached[0]
    else:
        key = ApiKey.objects.select_related("app").filter(prefix=prefix, revoked_at__isnull=True).first()
        if key is None:
            _api_keys.pop(prefix, None)
        else:
            if len(_api_keys) >= _API_KEYS_HELD:
                _api_keys.clear()
            _api_keys[prefix] = (key, now)
    if key is None or not secrets.compare_digest(key.hashed_secret, _hash_secret(secret)):
        return None
    return key


@transaction.atomic
def model_version_register(
    *,
    name: str,
    source_dir: Path,
    base_model_path: str,
    recipe: str = "",
    metrics: dict | None = None,
    parent: ModelVersion | None = None,
    status: str = ModelVersion.Status.CANDIDATE,
) -> ModelVersion:
    """Copy a model directory into the store, write its sha256 manifest, and register it.

    The directory is copied under a temporary name and renamed, so the store never holds a
    half-written artifact under a registered name.
    """
    if ModelVersion.objects.filter(name=name).exists():
        raise ApplicationError(f"a model version named {name!r} exists", code="duplicate_version", status=409)
    loading.check_safe(Path(source_dir))
    target = store_path(name)
    if Path(source_dir).resolve() != target:
        tmp = store_path(f".{name}.incoming")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source_dir, tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    manifest = loading.write_manifest(target)
    return ModelVersion.objects.create(
        name=name,
        base_model_path=base_model_path,
        weights_path=name,
        manifest=manifest,
        sha256=loading.manifest_digest(manifest),
        recipe=recipe,
        metrics=metrics or {},
        parent=parent,
        status=status,
    )


def model_version_ensure_base() -> ModelVersion:
    """Register BASE_MODEL as the first active version when the registry is empty."""
    active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    if active:
        return active
    if not settings.BASE_MODEL:
        raise ApplicationError("no BASE_MODEL is set to register", code="no_model", status=503)
    base = Path(settings.BASE_MODEL)
    with transaction.atomic():
        version = model_version_register(
            name=f"{base.name}-base",
            source_dir=base,
            base_model_path=str(base),
            recipe="base",
        )
        return model_version_promote(version=version, reason="initial base model")


# Store names become directory names: one path segment, no dot first (the store's temporary names).
_VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# pg_advisory_xact_lock key of the first-start registration (any fixed 64-bit number).
_REGISTRY_LOCK_KEY = 0x636F_676C_6F6F_7001


def model_directory_check(*, path: Path) -> Path:
    """The resolved directory if it holds a model serving can load safely, else an
    ApplicationError ``invalid_model`` naming the reason: no directory, pickle weights
    (``*.bin``, ``*.pt``, ``*.pkl``, ...), no safetensors, no config.json, custom code, no tokenizer."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ApplicationError(f"{path} is not a directory", code="invalid_model")
    try:
        loading.check_safe(path)
    except loading.ArtifactError as exc:
        raise ApplicationError(f"{path}: {exc}", code="invalid_model") from exc
    # Serving loads the tokenizer.json shipped beside the weights, never one rebuilt or downloaded.
    if not (path / "tokenizer.json").is_file():
        raise ApplicationError(f"{path}: no tokenizer (tokenizer.json)", code="invalid_model")
    return path.resolve()


def model_version_import(*, path: Path, name: str | None = None, activate: bool = False) -> ModelVersion:
    """Register a model directory from outside the store (``manage.py model register``): check
    it, copy it into the store with its sha256 manifest, and with ``activate`` promote it, so
    every serving process loads, verifies and smoke-tests it before swapping."""
    source = model_directory_check(path=path)
    name = name or source.name
    if not _VERSION_NAME.fullmatch(name):
        raise ApplicationError(
            f"a version name is letters, digits, '.', '_' or '-' (at most 100, no dot first), not {name!r}",
            code="invalid_model",
        )
    with transaction.atomic():
        version = model_version_register(
            name=name, source_dir=source, base_model_path=str(source), recipe="base"
        )
        if activate:
            version = model_version_promote(version=version, reason="registered with --activate")
        return version


def model_version_register_base_if_empty() -> ModelVersion | None:
    """Register and activate BASE_MODEL when the registry holds no version at all.

    Serving processes call this at start; the first one registers, under a lock (PostgreSQL:
    an advisory transaction lock; SQLite: the write lock an IMMEDIATE transaction takes), and
    every other finds a version and does nothing. Returns the version it registered, or None.
    """
    if not settings.BASE_MODEL or ModelVersion.objects.exists():
        return None
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_REGISTRY_LOCK_KEY])
        if ModelVersion.objects.exists():
            return None
        base = model_directory_check(path=Path(settings.BASE_MODEL))
        # The name model_version_ensure_base gives, so the two never register one model twice.
        name = f"{Path(settings.BASE_MODEL).name or base.name}-base"
        version = model_version_register(name=name, source_dir=base, base_model_path=str(base), recipe="base")
        log.info("registered BASE_MODEL %s as %s", base, version.name)
        return model_version_promote(version=version, reason="BASE_MODEL registered at first start")


# Manifest digests this process has loaded and smoke-tested: verifying one again re-hashes its
# files (a tampered file is still caught) but does not load the model a second time.
_loaded_digests: set[str] = set()


def model_version_verify(*, version: ModelVersion) -> str | None:
    """Why ``version`` cannot serve, or None when it can: every file matches the manifest's
    sha256, the weights load and the model answers the smoke prompt; the same checks
    (inference.serving.load_version) a serving process runs before it swaps."""
    try:
        loading.verify_manifest(store_path(version.weights_path), version.manifest)
        if version.sha256 not in _loaded_digests:
            serving.load_version(version)  # the loaded model is dropped: only the verdict counts
            _loaded_digests.add(version.sha256)
    except Exception as exc:  # whatever stops a load (bad bytes, bad config, no memory) refuses it
        return f"{type(exc).__name__}: {exc}"[:500]
    return None


def model_version_promote(*, version: ModelVersion, reason: str) -> ModelVersion:
    """Make ``version`` the one every serving process answers with; retire the previous one.

    The version is verified first (model_version_verify): one that fails is marked rejected
    with the reason and the promotion is refused (409 ``verification_failed``), so no serving
    process is asked to load what none can. Called inside an outer transaction, the rejection
    rolls back with it; callers that must keep it verify first (retrain's gate does).
    Serving processes notice the change through the registry (see inference.serving).

    Verifying loads the model, which a process of a model-free role (web, beat) never does:
    there the promotion is handed to a worker through the outbox (task
    ``inference.model_version_promote``), which verifies and promotes or rejects, and the
    version comes back unchanged (not active yet). Callers tell the two apart by its status.
    """
    if settings.COGLOOP_ROLE in settings.MODEL_FREE_ROLES:
        return _model_version_promote_queue(version=version, reason=reason)
    return model_version_promote_verified(version=version, reason=reason)


def _refuse_rejected(version: ModelVersion) -> None:
    if version.status == ModelVersion.Status.REJECTED:
        raise ApplicationError(f"{version.name} was rejected and cannot be promoted", code="rejected_version")


@transaction.atomic
def _model_version_promote_queue(*, version: ModelVersion, reason: str) -> ModelVersion:
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    _refuse_rejected(version)
    if version.status != ModelVersion.Status.ACTIVE:
        outbox_enqueue(
            task_name="inference.model_version_promote", payload={"version_id": version.pk, "reason": reason}
        )
        log.info("promotion of %s handed to a worker for verification: %s", version.name, reason)
    return version


def model_version_promote_verified(*, version: ModelVersion, reason: str) -> ModelVersion:
    """Verify ``version`` in this process (it loads the model) and promote it; see model_version_promote."""
    _refuse_rejected(version)  # said before any costly verification
    if (problem := model_version_verify(version=version)) is not None:
        if version.status != ModelVersion.Status.ACTIVE:
            model_version_reject(version=version, reason=f"verification failed: {problem}")
        raise ApplicationError(
            f"{version.name} failed verification: {problem}", code="verification_failed", status=409
        )
    return model_version_activate_unverified_unsafe(version=version, reason=reason)


@transaction.atomic
def model_version_activate_unverified_unsafe(*, version: ModelVersion, reason: str) -> ModelVersion:
    """Make ``version`` active without verifying its files: only after model_version_verify
    (model_version_promote does both), or for rows that stand for history with no files."""
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    _refuse_rejected(version)  # again under the row lock: it may have been rejected meanwhile
    now = timezone.now()
    previous = (
        ModelVersion.objects.select_for_update()
        .filter(status=ModelVersion.Status.ACTIVE)
        .exclude(pk=version.pk)
    )
    for old in previous:
        old.status = ModelVersion.Status.RETIRED
        old.promotion_history = [
            *old.promotion_history,
            {"event": "retired", "at": now.isoformat(), "by": version.name},
        ]
        old.save(update_fields=["status", "promotion_history"])
    version.status = ModelVersion.Status.ACTIVE
    version.promoted_at = now
    version.promotion_history = [
        *version.promotion_history,
        {"event": "promoted", "at": now.isoformat(), "reason": reason},
    ]
    version.save(update_fields=["status", "promoted_at", "promotion_history"])
    log.info("promoted %s: %s", version.name, reason)
    transaction.on_commit(lambda: _announce_swap(version.pk))
    return version


def _announce_swap(version_id: int) -> None:
    """Tell serving processes now (Redis pub/sub); without Redis they notice by polling."""
    if not settings.REDIS_URL:
        return
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).publish(
            SWAP_CHANNEL, str(version_id)
        )
    except Exception as exc:  # the registry is the truth; polling picks it up
        log.warning("could not announce the swap over Redis: %s", exc)


@transaction.atomic
def model_version_rollback(*, version: ModelVersion, by: str) -> ModelVersion:
    """Promote the version that ``version`` replaced. ``version`` must be the active one."""
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != ModelVersion.Status.ACTIVE:
        raise ApplicationError(f"{version.name} is not the active version", code="not_active", status=409)
    replaced = [
        v
        for v in ModelVersion.objects.filter(status=ModelVersion.Status.RETIRED)
        if any(e.get("event") == "retired" and e.get("by") == version.name for e in v.promotion_history)
    ]
    if not replaced:
        raise ApplicationError(
            f"{version.name} replaced no earlier version", code="nothing_to_roll_back", status=409
        )
    previous = max(replaced, key=lambda v: v.promoted_at or v.created_at)
    return model_version_promote(version=previous, reason=f"rollback from {version.name} by {by}")


@transaction.atomic
def model_version_reject(*, version: ModelVersion, reason: str) -> ModelVersion:
    version.status = ModelVersion.Status.REJECTED
    version.promotion_history = [
        *version.promotion_history,
        {"event": "rejected", "at": timezone.now().isoformat(), "reason": reason},
    ]
    version.save(update_fields=["status", "promotion_history"])
    return version


def steps_with_flags(parsed: ParsedOutput, parts: ScoreParts) -> list[dict]:
    wrong = set(parts.wrong_steps)
    return [{**s.to_dict(), "wrong": s.index in wrong} for s in parsed.steps]


def _head_confidence(meta: dict | None) -> float | None:
    return (meta or {}).get("confidence")


def _scored_fields(
    parsed: ParsedOutput,
    *,
    meta: dict | None,
    model_confidence: float | None,
    agreement: float | None = None,
    grouped: bool = False,
) -> dict:
    """The Output columns that parsing and scoring give, the confidences passed to the score."""
    parts = score_output(
        parsed,
        weight_consistency=settings.COGLOOP["SCORE_WEIGHT_CONSISTENCY"],
        weight_adaptability=settings.COGLOOP["SCORE_WEIGHT_ADAPTABILITY"],
        agreement=agreement,
        model_confidence=model_confidence,
        head_confidence=_head_confidence(meta),
    )
    steps = steps_with_flags(parsed, parts)
    if meta:
        # An untrained head's strategy guesses are noise: recorded as absent, like its confidence.
        for step, predicted in zip(steps, meta.get("strategies", [])):
            step["predicted_strategy"] = None if meta.get("untrained") else predicted
    score_parts = parts.to_dict()
    if grouped:  # a sample alone has no agreement to report; its parts stay as they always were
        score_parts["agreement"] = agreement
    return {
        "reasoning": parsed.reasoning,
        "steps": steps,
        "answer": parsed.answer,
        "cognition_score": parts.cognition_score,
        "consistency": parts.consistency,
        "adaptability": parts.adaptability,
        "score_parts": score_parts,
        "model_confidence": model_confidence,
        "head_confidence": _head_confidence(meta),
    }


def request_hash(body: dict) -> str:
    """What a replay must match: sha256 of the request's fields (without its key), in one order."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _refuse_another_body(*, first: Output, idempotency_key: str, request_hash: str) -> None:
    # An output stored before hashes were recorded has none to compare: it replays as it did.
    if request_hash and first.request_hash and first.request_hash != request_hash:
        raise ApplicationError(
            f"Idempotency-Key {idempotency_key!r} was used with a different request; "
            "send that request again or use a new key",
            code="idempotency_key_reused",
            status=409,
        )


def _single_output_replay(*, app: ProductApp, idempotency_key: str, request_hash: str = "") -> Output | None:
    """The Output a key already made, refusing a key that made a sample group or came with
    another request."""
    output = Output.objects.filter(app=app, idempotency_key=idempotency_key).first()
    if output is not None and output.sample_group is not None:
        raise ApplicationError(
            "this Idempotency-Key was used for a sample group; send the group again or use a new key",
            code="idempotency_key_reused",
            status=409,
        )
    if output is not None:
        _refuse_another_body(first=output, idempotency_key=idempotency_key, request_hash=request_hash)
    return output


def output_create(
    *,
    app: ProductApp,
    prompt: str,
    raw_text: str,
    source: str = Output.Source.GENERATED,
    model_version: ModelVersion | None = None,
    latency_ms: int | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    idempotency_key: str | None = None,
    request_hash: str = "",
    meta: dict | None = None,
    model_confidence: float | None = None,
) -> Output:
    """Parse and score a text, store it as an Output, and run the output-created hooks.

    ``meta`` is the metacognition head's reading (per-step strategies, confidence);
    ``model_confidence`` the one the answer tokens' log-probabilities give. ``request_hash``
    (see request_hash()) is what a later request with the same key must match.

    The insert and the hooks share one transaction and no savepoint: a key taken already
    fails the insert, the whole transaction rolls back, and the replay is looked up after.
    """
    fields = _scored_fields(parse_output(raw_text), meta=meta, model_confidence=model_confidence)
    try:
        with transaction.atomic():
            output = Output.objects.create(
                app=app,
                source=source,
                prompt=prompt,
                raw_text=raw_text,
                **fields,
                model_version=model_version,
                latency_ms=latency_ms,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                idempotency_key=idempotency_key,
                request_hash=request_hash if idempotency_key else "",
            )
            hooks.output_created(output)
    except IntegrityError:
        if idempotency_key:
            replayed = _single_output_replay(
                app=app, idempotency_key=idempotency_key, request_hash=request_hash
            )
            if replayed is not None:
                return replayed
        raise
    return output


def _served_version(version_id: int | None) -> ModelVersion | None:
    """The registry row of the version that generated (None for a slot without one)."""
    return ModelVersion.objects.filter(pk=version_id).first() if version_id is not None else None


def output_generate(
    *,
    app: ProductApp,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    idempotency_key: str | None = None,
    request_hash: str = "",
) -> Output:
    """Generate with the serving model and store the scored Output.

    Generation runs outside any transaction: a slow model never holds a database lock. A
    key is checked before the model runs: a replay or a refusal costs no generation.
    """
    if idempotency_key:
        existing = _single_output_replay(app=app, idempotency_key=idempotency_key, request_hash=request_hash)
        if existing:
            return existing
    result = serving.generate(prompt, max_new_tokens=max_new_tokens, temperature=temperature)
    return output_create(
        app=app,
        prompt=prompt,
        raw_text=result.text,
        model_version=_served_version(result.version_id),
        latency_ms=result.latency_ms,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        meta=result.meta,
        model_confidence=result.model_confidence,
    )


def logprob_confidence(logprobs: tuple[list[str], list[float]] | None) -> float | None:
    """The model confidence that an answer's posted (tokens, log-probabilities) give."""
    if logprobs is None:
        return None
    tokens, values = logprobs
    return answer_confidence(tokens, values)


@dataclass(frozen=True)
class SampleText:
    """One answer of a sample group, as a caller posted it or generation made it."""

    raw_text: str
    model_confidence: float | None = None
    meta: dict | None = None  # the metacognition head's reading
    latency_ms: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class SampleGroup:
    """Answers to one prompt sampled together, in the order they were given."""

    id: uuid.UUID
    outputs: list[Output]

    @cached_property
    def majority_answer(self) -> str | None:
        return majority_answer([o.answer for o in self.outputs])

    def is_majority(self, output: Output) -> bool:
        majority = self.majority_answer
        return majority is not None and normalise_answer(output.answer) == majority


def _sample_group_of(output: Output) -> SampleGroup:
    outputs = list(
        Output.objects.filter(app_id=output.app_id, sample_group=output.sample_group)
        .select_related("model_version")
        .order_by("id")
    )
    assert output.sample_group is not None  # the caller looked it up by its group
    return SampleGroup(id=output.sample_group, outputs=outputs)


def _sample_group_replay(
    *, app: ProductApp, idempotency_key: str, request_hash: str = ""
) -> SampleGroup | None:
    """The group a key already made (the key and the request's hash sit on its first output)."""
    output = Output.objects.filter(app=app, idempotency_key=idempotency_key).first()
    if output is None:
        return None
    if output.sample_group is None:
        raise ApplicationError(
            "this Idempotency-Key was used for a single output; send that again or use a new key",
            code="idempotency_key_reused",
            status=409,
        )
    _refuse_another_body(first=output, idempotency_key=idempotency_key, request_hash=request_hash)
    return _sample_group_of(output)


@transaction.atomic
def output_group_create(
    *,
    app: ProductApp,
    prompt: str,
    samples: Sequence[SampleText],
    source: str = Output.Source.GENERATED,
    model_version: ModelVersion | None = None,
    idempotency_key: str | None = None,
    request_hash: str = "",
) -> SampleGroup:
    """Store answers sampled together for one prompt as one group, each scored with its agreement.

    All of the group or none of it is written. Each sample's consistency counts the share of
    the group's other samples whose final answer agrees with its own (engine.agreement).
    An ``idempotency_key`` is held by the group's first output; a replay returns the group.
    """
    if not 2 <= len(samples) <= MAX_SAMPLES:
        raise ApplicationError(
            f"a sample group holds 2 to {MAX_SAMPLES} samples, not {len(samples)}",
            code="validation_error",
            extra={"fields": {"samples": [f"between 2 and {MAX_SAMPLES} samples"]}},
        )
    parsed = [parse_output(s.raw_text) for s in samples]
    agreements = agreement_scores([p.answer for p in parsed])
    group = uuid.uuid4()
    outputs: list[Output] = []
    for i, (sample, parsed_sample, agreement) in enumerate(zip(samples, parsed, agreements)):
        fields = _scored_fields(
            parsed_sample,
            meta=sample.meta,
            model_confidence=sample.model_confidence,
            agreement=agreement,
            grouped=True,
        )
        row = Output(
            app=app,
            source=source,
            prompt=prompt,
            raw_text=sample.raw_text,
            **fields,
            sample_group=group,
            model_version=model_version,
            latency_ms=sample.latency_ms,
            prompt_tokens=sample.prompt_tokens,
            completion_tokens=sample.completion_tokens,
            idempotency_key=idempotency_key if i == 0 else None,
            request_hash=request_hash if i == 0 and idempotency_key else "",
        )
        if i == 0 and idempotency_key:
            try:
                with transaction.atomic():
                    row.save()
            except IntegrityError:
                replayed = _sample_group_replay(
                    app=app, idempotency_key=idempotency_key, request_hash=request_hash
                )
                if replayed is not None:
                    return replayed
                raise
        else:
            row.save()
        outputs.append(row)
    for output in outputs:
        hooks.output_created(output)
    return SampleGroup(id=group, outputs=outputs)


def output_group_generate(
    *,
    app: ProductApp,
    prompt: str,
    n: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    idempotency_key: str | None = None,
    request_hash: str = "",
) -> SampleGroup:
    """Sample ``n`` answers to one prompt in one batch and store them as a sample group.

    Generation runs outside any transaction: a slow model never holds a database lock.
    """
    if idempotency_key:
        existing = _sample_group_replay(app=app, idempotency_key=idempotency_key, request_hash=request_hash)
        if existing:
            return existing
    served = serving.generate_samples(
        prompt, n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p
    )
    return output_group_create(
        app=app,
        prompt=prompt,
        samples=[
            SampleText(
                raw_text=s.text,
                model_confidence=s.model_confidence,
                meta=s.meta,
                latency_ms=s.latency_ms,
                prompt_tokens=s.prompt_tokens,
                completion_tokens=s.completion_tokens,
            )
            for s in served
        ],
        model_version=_served_version(served[0].version_id),
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )


# -- answers made elsewhere: the serving head reads them -------------------------------------


def model_version_by_name(*, name: str) -> ModelVersion:
    """The registered version called ``name``; a 400 naming the field when there is none."""
    version = ModelVersion.objects.filter(name=name).first()
    if version is None:
        raise ApplicationError(
            f"no model version named {name!r}",
            code="validation_error",
            extra={"fields": {"model_version": [f"no model version named {name!r}"]}},
        )
    return version


def _reading_head(model_version: ModelVersion | None):
    """What this process serves, when it is ``model_version`` with a trained head; else None."""
    loaded = serving.SLOT.current
    if (
        model_version is None
        or loaded is None
        or loaded.version_id != model_version.pk
        or loaded.head is None
        or not loaded.head.config.trained
    ):
        return None
    return loaded


def output_head_read(
    *, prompt: str, texts: Sequence[str], model_version: ModelVersion | None
) -> list[dict | None]:
    """The metacognition head's reading of answers made elsewhere, one per text (None each when
    it cannot read them).

    The head reads when this process serves ``model_version`` with a trained head (the inference
    role; a web process holds no model and reads nothing): one padded prefill of prompt + answer
    over the request's answers, no generation, on a thread of its own (see
    engine.generation.run_on_own_thread). Only the version that made an answer reads it: the
    head learned the states of its own model. The reading is advisory, as in generation: a
    failure leaves the answers without it.
    """
    loaded = _reading_head(model_version)
    if loaded is None:
        return [None] * len(texts)
    # Imported here: meta_serving imports torch, which only a process holding a model has loaded.
    from inference.engine.generation import run_on_own_thread
    from inference.engine.meta_serving import read_answers

    try:
        return run_on_own_thread(
            read_answers,
            loaded.model,
            loaded.tokenizer,
            loaded.head,
            [prompt] * len(texts),
            list(texts),
            max_tokens=getattr(loaded.model.config, "max_position_embeddings", None),
        )
    except Exception:
        log.warning("the head could not read %d external answer(s)", len(texts), exc_info=True)
        return [None] * len(texts)


def output_external_create(
    *,
    app: ProductApp,
    prompt: str,
    raw_text: str,
    model_version: ModelVersion | None = None,
    model_confidence: float | None = None,
    idempotency_key: str | None = None,
    request_hash: str = "",
) -> Output:
    """Score and store an answer made elsewhere (output_create), read first by the serving head
    where it can (output_head_read). A replay is answered before the head reads anything, and
    the read runs outside any transaction, like generation. Where no head reads (a web
    process), the insert itself finds a replay (output_create): one query fewer."""
    meta = None
    if _reading_head(model_version) is not None:
        if idempotency_key:
            existing = _single_output_replay(
                app=app, idempotency_key=idempotency_key, request_hash=request_hash
            )
            if existing:
                return existing
        (meta,) = output_head_read(prompt=prompt, texts=[raw_text], model_version=model_version)
    return output_create(
        app=app,
        prompt=prompt,
        raw_text=raw_text,
        source=Output.Source.EXTERNAL,
        model_version=model_version,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        meta=meta,
        model_confidence=model_confidence,
    )


def output_external_group_create(
    *,
    app: ProductApp,
    prompt: str,
    samples: Sequence[SampleText],
    model_version: ModelVersion | None = None,
    idempotency_key: str | None = None,
    request_hash: str = "",
) -> SampleGroup:
    """output_external_create for a sample group: the head reads all of it in one prefill."""
    if idempotency_key:
        existing = _sample_group_replay(app=app, idempotency_key=idempotency_key, request_hash=request_hash)
        if existing:
            return existing
    metas = output_head_read(prompt=prompt, texts=[s.raw_text for s in samples], model_version=model_version)
    return output_group_create(
        app=app,
        prompt=prompt,
        samples=[
            SampleText(raw_text=s.raw_text, model_confidence=s.model_confidence, meta=meta)
            for s, meta in zip(samples, metas)
        ],
        source=Output.Source.EXTERNAL,
        model_version=model_version,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )


# -- the OpenAI-compatible gateway (inference.gateway) ---------------------------------------

# The model name that means "whatever version is active", stable across promotions.
CHAT_MODEL_ALIAS = "cogloop"


# The name of the version the slot holds, beside a weak reference to what it holds: checking a
# request's model against it then costs no query, and a swap (another object) makes it stale
# without keeping the old model alive.
_served_name: tuple[weakref.ref, str] | None = None


def chat_model_resolve(*, name: str) -> None:
    """Check that a chat request may name the model ``name``, once this process can answer:
    the version the slot serves, the registry's active one (they differ during a swap), or
    CHAT_MODEL_ALIAS. Any other name is a 404 ``model_not_found``; nothing to serve, a 503
    ``no_model``."""
    global _served_name
    loaded = serving.SLOT.current
    if loaded is not None and loaded.version_id is not None:
        if name == CHAT_MODEL_ALIAS:
            return
        if _served_name is None or _served_name[0]() is not loaded:
            served = ModelVersion.objects.filter(pk=loaded.version_id).values_list("name", flat=True).first()
            _served_name = (weakref.ref(loaded), served) if served is not None else None
        if _served_name is not None and name == _served_name[1]:
            return
    active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    if active is None:
        raise ApplicationError("no model is being served", code="no_model", status=503)
    if name not in (active.name, CHAT_MODEL_ALIAS):
        raise ApplicationError(
            f"the model {name!r} does not exist: this server answers with {active.name!r} "
            f"(or {CHAT_MODEL_ALIAS!r}, whichever version is active); GET /v1/models lists it",
            code="model_not_found",
            status=404,
            extra={"param": "model"},
        )
    serving._require_model()
    loaded = serving.SLOT.current
    if loaded is not None and loaded.version_id == active.pk:
        _served_name = (weakref.ref(loaded), active.name)


@dataclass(frozen=True)
class _ServedWithLogprobs:
    text: serving.ServedText
    token_logprobs: tuple[float, ...] | None  # natural log-probability of each generated token


def _generate_with_logprobs(
    prompt: str, *, n: int, max_new_tokens: int, temperature: float, top_p: float
) -> list[_ServedWithLogprobs]:
    """serving.generate (n = 1) or serving.generate_samples (n > 1), through the same batcher,
    keeping each token's log-probability, which serving's ServedText leaves out. A generation
    that outlasts GENERATE_TIMEOUT_S is a 503."""
    serving._require_model()
    started = time.monotonic()
    params = GenerationParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    timeout = settings.COGLOOP["GENERATE_TIMEOUT_S"]
    try:
        if n > 1:
            results = serving.batcher().generate_group(prompt, params, n, timeout=timeout)
        else:
            results = [serving.batcher().generate(prompt, params, timeout=timeout)]
    except TimeoutError:
        raise ApplicationError(
            f"no answer within {timeout:g} s; the server is busy, retry shortly",
            code="generation_timeout",
            status=503,
        ) from None
    return [_ServedWithLogprobs(serving._served(r, started), r.generation.token_logprobs) for r in results]


@dataclass(frozen=True)
class ChatChoice:
    output: Output
    finish_reason: str  # "stop": the answer ended (EOS or a stop sequence); "length": max_tokens
    # (token, natural log-probability) of each answer token; None when not asked for or not known
    logprobs: list[tuple[str, float]] | None = None


@dataclass(frozen=True)
class ChatCompletion:
    choices: list[ChatChoice]
    group: SampleGroup | None  # the sample group, when n > 1
    prompt_tokens: int

    @property
    def outputs(self) -> list[Output]:
        return [c.output for c in self.choices]


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the earliest stop sequence (which is left out), and whether one was met."""
    cuts = [at for at in (text.find(s) for s in stop if s) if at >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


def _replayed_completion(first: Output, *, n: int, max_new_tokens: int) -> ChatCompletion:
    """A completion an idempotency key already made, as it was stored (token log-probabilities
    are not stored: a replay has none)."""
    group = _sample_group_of(first) if first.sample_group is not None else None
    outputs = group.outputs if group else [first]
    return ChatCompletion(
        choices=[
            ChatChoice(o, "length" if (o.completion_tokens or 0) >= max_new_tokens else "stop")
            for o in outputs
        ],
        group=group,
        prompt_tokens=first.prompt_tokens or 0,
    )


def chat_completion_create(
    *,
    app: ProductApp,
    prompt: str,
    n: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    stop: Sequence[str] = (),
    logprobs: bool = False,
    idempotency_key: str | None = None,
    request_hash: str = "",
) -> ChatCompletion:
    """Generate ``n`` answers for the gateway and store them as /api/v1/generate does: one
    scored Output (output_create), or a sample group of them (output_group_create) for n > 1.

    The built-in batcher cannot stop at a stop sequence: the answer is generated to its end
    (EOS or max_new_tokens) and cut at the earliest stop sequence, and what the client is
    given is what is stored and scored. A cut answer's token count, model confidence and
    head reading are those of the part kept. Generation runs outside any transaction.
    """
    if idempotency_key:
        first = Output.objects.filter(app=app, idempotency_key=idempotency_key).first()
        if first is not None:
            # the same refusals as /api/v1/generate: another request, or a single for a group
            if n > 1:
                _sample_group_replay(app=app, idempotency_key=idempotency_key, request_hash=request_hash)
            else:
                _single_output_replay(app=app, idempotency_key=idempotency_key, request_hash=request_hash)
            return _replayed_completion(first, n=n, max_new_tokens=max_new_tokens)
    served = _generate_with_logprobs(
        prompt, n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p
    )
    version = _served_version(served[0].text.version_id)
    loaded = serving.SLOT.current
    tokenizer = loaded.tokenizer if loaded is not None else None
    samples, finish, token_logprobs, cut_rows = [], [], [], []
    for i, s in enumerate(served):
        text, stopped = cut_at_stop(s.text.text, stop)
        pieces = (
            _token_pieces(tokenizer, text, generated=s.token_logprobs, cut=stopped)
            if logprobs or stopped
            else None
        )
        completion_tokens = len(pieces) if stopped and pieces is not None else s.text.completion_tokens
        confidence = s.text.model_confidence
        if stopped:
            cut_rows.append(i)
            confidence = (
                answer_confidence([t for t, _ in pieces], [lp for _, lp in pieces]) if pieces else None
            )
        finish.append("stop" if stopped or s.text.completion_tokens < max_new_tokens else "length")
        token_logprobs.append(pieces if logprobs else None)
        samples.append(
            SampleText(
                raw_text=text,
                model_confidence=confidence,
                meta=s.text.meta,
                latency_ms=s.text.latency_ms,
                prompt_tokens=s.text.prompt_tokens,
                completion_tokens=completion_tokens,
            )
        )
    if cut_rows:  # the head's reading was of the whole answer: it reads the part kept instead
        reread = output_head_read(
            prompt=prompt, texts=[samples[i].raw_text for i in cut_rows], model_version=version
        )
        for i, meta in zip(cut_rows, reread):
            samples[i] = replace(samples[i], meta=meta)
    group = None
    if n > 1:
        group = output_group_create(
            app=app,
            prompt=prompt,
            samples=samples,
            model_version=version,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
        outputs = group.outputs
    else:
        only = samples[0]
        outputs = [
            output_create(
                app=app,
                prompt=prompt,
                raw_text=only.raw_text,
                model_version=version,
                latency_ms=only.latency_ms,
                prompt_tokens=only.prompt_tokens,
                completion_tokens=only.completion_tokens,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                meta=only.meta,
                model_confidence=only.model_confidence,
            )
        ]
    return ChatCompletion(
        choices=[ChatChoice(o, f, lp) for o, f, lp in zip(outputs, finish, token_logprobs)],
        group=group,
        prompt_tokens=served[0].text.prompt_tokens,
    )


def _token_pieces(
    tokenizer, text: str, *, generated: Sequence[float] | None, cut: bool
) -> list[tuple[str, float]] | None:
    """(token, log-probability) for each token of an answer, or None when they cannot be told.

    Generation keeps each token's log-probability but not the token: the text is encoded again,
    and the pairs hold only when that gives as many tokens as were generated (a tokenizer need
    not encode its own output back to the same tokens). A ``cut`` answer's tokens are those
    of the kept text, paired with the first log-probabilities.
    """
    if tokenizer is None or generated is None:
        return None
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) > len(generated) or (not cut and len(ids) != len(generated)):
        return None
    return [(tokenizer.decode([i]), lp) for i, lp in zip(ids, generated)]
