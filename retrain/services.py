"""Training data, dataset versions, training runs, evaluation and the promotion gate."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from datetime import date, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.models import Annotation
from cogloop.errors import ApplicationError
from inference import services as inference_services
from inference.engine import workload
from inference.models import ModelVersion
from retrain import selectors
from retrain.models import DatasetVersion, Evaluation, TrainingRun, TrainingSample

log = logging.getLogger("cogloop.retrain")


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _response(steps: list[dict], answer: str) -> str:
    """The corrected response in the model's own output format."""
    lines = "\n".join(f"Step {i} [{s['strategy']}]: {s['text']}" for i, s in enumerate(steps, start=1))
    answer = answer.strip()
    if not answer.lower().startswith("the answer is"):
        answer = f"The answer is {answer.rstrip('.')}."
    return f"{lines}\n</think>\n\n{answer}"


@transaction.atomic
def training_samples_collect() -> int:
    """Turn approved annotations without samples into reflection and strategy samples."""
    created = 0
    annotations = (
        Annotation.objects.filter(status=Annotation.Status.APPROVED, training_samples__isnull=True)
        .select_related("review_item__output")
        .order_by("pk")
    )
    for a in annotations:
        output = a.review_item.output
        prompt = output.prompt
        split = workload.split_of(prompt)
        chosen = _response(a.corrected_steps, a.corrected_answer)
        payloads = {
            TrainingSample.Kind.REFLECTION: {
                "prompt": prompt, "chosen": chosen, "rejected": output.raw_text,
                "error_type": a.error_type, "first_wrong_step": a.first_wrong_step,
            },
            TrainingSample.Kind.STRATEGY: {"prompt": prompt, "steps": a.corrected_steps},
            TrainingSample.Kind.UNCERTAINTY: {
                "prompt": prompt, "answer": a.corrected_answer, "low": a.confidence_low, "high": a.confidence_high,
            },
        }
        for kind, payload in payloads.items():
            _, was_created = TrainingSample.objects.get_or_create(
                kind=kind,
                content_hash=_hash({"prompt": prompt, "kind": kind}),
                defaults={"payload": payload, "source_annotation": a, "split": split},
            )
            created += was_created
    return created


def current_period(today: date | None = None) -> str:
    today = today or timezone.now().date()
    return f"{today.year:04d}-{today.month:02d}"


@transaction.atomic
def dataset_version_build(*, period: str | None = None) -> DatasetVersion:
    """The month's immutable dataset: the previous version's samples plus the new ones."""
    period = period or current_period()
    training_samples_collect()
    if DatasetVersion.objects.filter(period=period).exists():
        raise ApplicationError(f"dataset version {period} exists and is immutable", code="dataset_exists", status=409)
    parent = DatasetVersion.objects.filter(period__lt=period).order_by("-period").first()
    old_ids = set(parent.samples.values_list("pk", flat=True)) if parent else set()
    new = TrainingSample.objects.exclude(pk__in=old_ids).filter(split="train").order_by("pk")
    if not new.exists():
        raise ApplicationError("no new approved samples since the last dataset version", code="no_new_samples")
    ids = sorted(old_ids | set(new.values_list("pk", flat=True)))
    samples = list(TrainingSample.objects.filter(pk__in=ids).order_by("pk"))
    counts: dict[str, int] = {}
    for s in samples:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    out_dir = Path(settings.VAR_DIR) / "datasets" / period
    out_dir.mkdir(parents=True, exist_ok=True)
    sft = out_dir / "sft.jsonl"
    with sft.open("w") as fh:
        for s in samples:
            if s.kind == TrainingSample.Kind.REFLECTION:
                p = s.payload
                fh.write(json.dumps({"messages": [{"role": "user", "content": p["prompt"]},
                                                  {"role": "assistant", "content": p["chosen"]}]}) + "\n")
    digest = _hash([[s.kind, s.content_hash] for s in samples])
    version = DatasetVersion.objects.create(
        period=period,
        parent=parent,
        counts=counts,
        growth=(len(ids) - len(old_ids)) / len(old_ids) if old_ids else None,
        sha256=digest,
        files={"sft": str(sft)},
    )
    version.samples.set(samples)
    return version


def quarter_of(d: date) -> str:
    return f"{d.year:04d}-Q{(d.month - 1) // 3 + 1}"


def eval_items(n: int | None = None) -> list[dict]:
    """The held-out set: workload problems whose hash puts them in the eval split."""
    n = n or settings.COGLOOP_EVAL_SIZE
    return [
        {"prompt": p.prompt, "answer": p.answer, "slice": p.slice}
        for p in workload.problems(n, seed=settings.COGLOOP_EVAL_SEED, split="eval")
    ]


@transaction.atomic
def training_run_start(*, dataset: DatasetVersion, recipe: str = "lora-all", period: str | None = None,
                       config: dict | None = None) -> TrainingRun:
    from retrain.trainer.config import TrainConfig, TrainConfigError

    period = period or quarter_of(timezone.now().date())
    existing = TrainingRun.objects.filter(period=period).first()
    if existing:
        raise ApplicationError(
            f"quarter {period} already has training run {existing.pk} ({existing.stage})",
            code="run_exists", status=409, extra={"run_id": existing.pk},
        )
    try:
        train_config = TrainConfig(recipe=recipe, **(config or {}))
        train_config.validate()
    except TypeError as exc:
        raise ApplicationError(f"unknown training option: {exc}", code="invalid_config") from exc
    except TrainConfigError as exc:
        raise ApplicationError(str(exc), code="invalid_config") from exc
    base = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    if base is None:
        raise ApplicationError("no active model version to train from", code="no_active_model")
    run = TrainingRun.objects.create(
        period=period, dataset=dataset, base_version=base, recipe=recipe, config=train_config.to_dict()
    )
    from retrain.tasks import training_run_execute

    transaction.on_commit(lambda: training_run_execute.delay(run.pk))
    return run


def _update(run: TrainingRun, **fields) -> None:
    for k, v in fields.items():
        setattr(run, k, v)
    run.heartbeat_at = timezone.now()
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=run.heartbeat_at, **fields)


def _lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


LEASE_STALE_AFTER = timedelta(minutes=5)


def training_run_acquire(*, run_id: int) -> TrainingRun | None:
    """Take the run's lease; None when another live worker holds it or it has finished."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.stage in (TrainingRun.Stage.DONE, TrainingRun.Stage.FAILED):
            return None
        fresh = run.heartbeat_at and timezone.now() - run.heartbeat_at < LEASE_STALE_AFTER
        if run.lease_owner and run.lease_owner != _lease_owner() and fresh:
            return None
        run.lease_owner = _lease_owner()
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["lease_owner", "heartbeat_at"])
        return run


def gate_decide(*, serving: dict, candidate: dict, min_gain: float, tolerance: float) -> dict:
    """Promote on an overall accuracy gain of at least ``min_gain`` with no slice losing more
    than ``tolerance``. Returns {"promote": bool, "reason": str}."""
    gain = candidate["overall"]["accuracy"] - serving["overall"]["accuracy"]
    losses = {
        name: round(serving["slices"][name]["accuracy"] - block["accuracy"], 4)
        for name, block in candidate["slices"].items()
        if name in serving["slices"] and serving["slices"][name]["accuracy"] - block["accuracy"] > tolerance
    }
    if losses:
        return {"promote": False, "reason": f"slices lost more than {tolerance:.0%}: {losses}", "gain": round(gain, 4)}
    if gain < min_gain:
        return {"promote": False, "reason": f"accuracy gain {gain:+.3f} is below the required {min_gain:+.3f}",
                "gain": round(gain, 4)}
    return {"promote": True, "reason": f"accuracy gain {gain:+.3f}, no slice lost more than {tolerance:.0%}",
            "gain": round(gain, 4)}


def training_run_execute(*, run_id: int) -> TrainingRun | None:
    """Run every stage of a training run. Long: holds a DB lease, never a transaction."""
    from retrain.trainer.config import TrainConfig
    from retrain.trainer.evaluate import evaluate_dir
    from retrain.trainer.train import finetune

    run = training_run_acquire(run_id=run_id)
    if run is None:
        return None
    try:
        items = eval_items()
        base = run.base_version
        base_dir = inference_services.store_path(base.weights_path)
        _update(run, stage=TrainingRun.Stage.BASELINE)
        serving_metrics, _ = evaluate_dir(base_dir, items, expected_manifest=base.manifest)
        Evaluation.objects.create(model_version=base, training_run=run, eval_set="workload-heldout", metrics=serving_metrics)

        _update(run, stage=TrainingRun.Stage.TRAINING)
        train_config = TrainConfig(**run.config)
        samples = [s.payload for s in run.dataset.samples.filter(kind=TrainingSample.Kind.REFLECTION).order_by("pk")]
        replay = selectors.replay_samples(version=base, limit=int(train_config.replay_ratio * len(samples)))
        _update(run, progress={"reflection_samples": len(samples), "replay_samples": len(replay)})
        work = Path(settings.VAR_DIR) / "runs" / str(run.pk)
        name = f"{base.name.removesuffix('-base')}-{run.period.lower()}-r{run.pk}"
        out_dir = work / "merged"

        history: list[dict] = []

        def on_progress(p):
            history.append({"step": p["step"], "loss": p["loss"]})
            _update(run, progress=p, loss_history=history)

        summary = finetune(base_dir=base_dir, samples=samples + replay, out_dir=out_dir, work_dir=work / "trainer",
                           config=train_config, on_progress=on_progress)

        _update(run, stage=TrainingRun.Stage.COMPRESS)
        candidate = inference_services.model_version_register(
            name=name, source_dir=out_dir, base_model_path=base.base_model_path, recipe=run.recipe,
            metrics={"training": {**{k: summary[k] for k in ("train_loss", "steps", "seconds", "samples")},
                                  "reflection_samples": len(samples), "replay_samples": len(replay)}},
            parent=base,
        )
        _update(run, stage=TrainingRun.Stage.CANDIDATE, result_version_id=candidate.pk)
        candidate_metrics, _ = evaluate_dir(inference_services.store_path(candidate.weights_path), items,
                                            expected_manifest=candidate.manifest)
        Evaluation.objects.create(model_version=candidate, training_run=run, eval_set="workload-heldout",
                                  metrics=candidate_metrics)

        _update(run, stage=TrainingRun.Stage.GATE)
        decision = gate_decide(serving=serving_metrics, candidate=candidate_metrics,
                               min_gain=settings.COGLOOP["GATE_MIN_GAIN"], tolerance=settings.COGLOOP["GATE_SLICE_TOLERANCE"])
        decision.update(serving=serving_metrics, candidate=candidate_metrics)
        with transaction.atomic():
            candidate.metrics = {**candidate.metrics, "evaluation": candidate_metrics}
            candidate.save(update_fields=["metrics"])
            if decision["promote"]:
                inference_services.model_version_promote(version=candidate, reason=decision["reason"])
            else:
                inference_services.model_version_reject(version=candidate, reason=decision["reason"])
            _update(run, stage=TrainingRun.Stage.DONE, decision=decision, finished_at=timezone.now())
        return run
    except Exception as exc:
        log.exception("training run %s failed", run_id)
        _update(run, stage=TrainingRun.Stage.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now())
        raise
