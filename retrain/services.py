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
from feedback.services import prompt_fingerprint
from inference import services as inference_services
from inference.engine import chat, workload
from inference.models import ModelVersion
from retrain import selectors
from retrain.models import DatasetVersion, Evaluation, TrainingRun, TrainingSample

log = logging.getLogger("cogloop.retrain")


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _response(steps: list[dict], answer: str) -> str:
    """The corrected response in the model's own output format."""
    lines = chat.render_steps(chat.Step(s["strategy"], s["text"]) for s in steps)
    answer = answer.strip()
    if not answer.lower().startswith("the answer is"):
        answer = f"The answer is {answer.rstrip('.')}."
    return f"{lines}\n</think>\n\n{answer}"


def held_out_fingerprints() -> set[str]:
    """Near-duplicate keys of every held-out prompt the gate measures with."""
    return {prompt_fingerprint(item["prompt"]) for item in eval_items()}


@transaction.atomic
def training_samples_collect() -> int:
    """Turn approved annotations without samples into reflection, strategy and uncertainty
    samples. A prompt that is a held-out problem or a near-duplicate of one (same text up to
    case, punctuation and spacing) is kept with split "eval" and never enters a dataset."""
    created = 0
    annotations = (
        Annotation.objects.filter(status=Annotation.Status.APPROVED, training_samples__isnull=True)
        .select_related("review_item__output")
        .order_by("pk")
    )
    held_out = held_out_fingerprints()
    for a in annotations:
        output = a.review_item.output
        prompt = output.prompt
        # Never train on a held-out problem, also not on a re-worded copy of one.
        split = "eval" if prompt_fingerprint(prompt) in held_out else workload.split_of(prompt)
        chosen = _response(a.corrected_steps, a.corrected_answer)
        payloads = {
            TrainingSample.Kind.REFLECTION: {
                "prompt": prompt,
                "chosen": chosen,
                "rejected": output.raw_text,
                "error_type": a.error_type,
                "first_wrong_step": a.first_wrong_step,
            },
            TrainingSample.Kind.STRATEGY: {"prompt": prompt, "steps": a.corrected_steps},
            TrainingSample.Kind.UNCERTAINTY: {
                "prompt": prompt,
                "answer": a.corrected_answer,
                "low": a.confidence_low,
                "high": a.confidence_high,
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
        raise ApplicationError(
            f"dataset version {period} exists and is immutable", code="dataset_exists", status=409
        )
    parent = DatasetVersion.objects.filter(period__lt=period).order_by("-period").first()
    old_ids = set(parent.samples.values_list("pk", flat=True)) if parent else set()
    new = list(
        TrainingSample.objects.exclude(pk__in=old_ids)
        .filter(split="train")
        .select_related("source_annotation__review_item__output")
    )
    if not new:
        raise ApplicationError(
            "no new approved samples since the last dataset version", code="no_new_samples"
        )
    # Growth is capped (DATASET_MAX_GROWTH of the previous version, by annotation); what does
    # not fit carries over to the next month. Highest value first: the weakest original
    # answers (lowest cognition score), then the oldest.
    by_annotation: dict[int, list[TrainingSample]] = {}
    for sample in new:
        by_annotation.setdefault(sample.source_annotation_id, []).append(sample)
    ranked = sorted(
        by_annotation.values(),
        key=lambda group: (
            group[0].source_annotation.review_item.output.cognition_score,
            group[0].source_annotation_id,
        ),
    )
    if parent:
        parent_annotations = len({a for a in parent.samples.values_list("source_annotation_id", flat=True)})
        room = max(1, int(parent_annotations * settings.COGLOOP["DATASET_MAX_GROWTH"]))
        ranked = ranked[:room]
    ids = sorted(old_ids | {s.pk for group in ranked for s in group})
    samples = list(TrainingSample.objects.filter(pk__in=ids).order_by("pk"))
    out_dir = Path(settings.VAR_DIR) / "datasets" / period
    files = _export(out_dir, samples)
    digest = _hash([[s.kind, s.content_hash] for s in samples])
    held_out = TrainingSample.objects.exclude(pk__in=old_ids).filter(split="eval").count()
    version = DatasetVersion.objects.create(
        period=period,
        parent=parent,
        counts=_kind_counts(samples),
        composition={
            **_composition(samples),
            "held_out_excluded": held_out,
            "carried_over": len(new) - (len(ids) - len(old_ids)),
        },
        growth=(len(ids) - len(old_ids)) / len(old_ids) if old_ids else None,
        sha256=digest,
        files=files,
    )
    version.samples.set(samples)
    return version


def _kind_counts(samples: list[TrainingSample]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in samples:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    return counts


def _composition(samples: list[TrainingSample]) -> dict:
    """Step counts by strategy (strategy samples) and reflection counts by error type."""
    strategies: dict[str, int] = {}
    errors: dict[str, int] = {}
    for s in samples:
        if s.kind == TrainingSample.Kind.STRATEGY:
            for step in s.payload["steps"]:
                strategies[step["strategy"]] = strategies.get(step["strategy"], 0) + 1
        elif s.kind == TrainingSample.Kind.REFLECTION:
            errors[s.payload["error_type"]] = errors.get(s.payload["error_type"], 0) + 1
    return {"strategy_steps": strategies, "error_types": errors}


def _export(out_dir: Path, samples: list[TrainingSample]) -> dict:
    """JSONL files a training stack reads as they are (``datasets.load_dataset("json")``):

    sft.jsonl          {"messages": [user, assistant]}: the corrected responses (chat SFT)
    preference.jsonl   {"prompt": [user], "chosen": [assistant], "rejected": [assistant]}: TRL's
                       conversational preference format (DPO, ORPO, ...)
    strategy.jsonl     {"prompt", "steps": [{"text", "strategy"}]}
    uncertainty.jsonl  {"prompt", "answer", "low", "high"}
    Returns {name: {"path", "rows", "sha256"}}.
    """
    rows: dict[str, list[dict]] = {"sft": [], "preference": [], "strategy": [], "uncertainty": []}
    for s in samples:
        p = s.payload
        user = [{"role": "user", "content": p["prompt"]}]
        if s.kind == TrainingSample.Kind.REFLECTION:
            chosen = [{"role": "assistant", "content": p["chosen"]}]
            rows["sft"].append({"messages": user + chosen})
            rows["preference"].append(
                {
                    "prompt": user,
                    "chosen": chosen,
                    "rejected": [{"role": "assistant", "content": p["rejected"]}],
                }
            )
        elif s.kind == TrainingSample.Kind.STRATEGY:
            rows["strategy"].append({"prompt": p["prompt"], "steps": p["steps"]})
        else:
            rows["uncertainty"].append({k: p[k] for k in ("prompt", "answer", "low", "high")})
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, items in rows.items():
        path = out_dir / f"{name}.jsonl"
        data = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items).encode()
        path.write_bytes(data)
        files[name] = {"path": str(path), "rows": len(items), "sha256": hashlib.sha256(data).hexdigest()}
    return files


def quarter_of(d: date) -> str:
    return f"{d.year:04d}-Q{(d.month - 1) // 3 + 1}"


def dataset_version_build_monthly() -> DatasetVersion | None:
    """The beat entry: this month's version, or nothing (said in the log) when there is no news."""
    period = current_period()
    if DatasetVersion.objects.filter(period=period).exists():
        return None
    try:
        return dataset_version_build(period=period)
    except ApplicationError as exc:
        log.info("no dataset version for %s: %s", period, exc.message)
        return None


def training_run_start_quarterly() -> TrainingRun | None:
    """The beat entry: this quarter's run on the latest dataset, once."""
    period = quarter_of(timezone.now().date())
    dataset = DatasetVersion.objects.order_by("-period").first()
    if dataset is None or TrainingRun.objects.filter(period=period).exists():
        return None
    return training_run_start(dataset=dataset, period=period)


RUN_MAX_ATTEMPTS = 3


def training_run_reconcile() -> list[int]:
    """Make missed or doubled beats and killed workers harmless (runs every few minutes).

    A run whose lease went stale mid-stage is handed to a worker again (it resumes from its
    last finished stage) or, after RUN_MAX_ATTEMPTS, marked failed with the reason. A quarter
    whose beat was missed gets its run. Returns the ids of runs re-enqueued.
    """
    from retrain.tasks import training_run_execute

    requeued = []
    stale_before = timezone.now() - LEASE_STALE_AFTER
    live = TrainingRun.objects.exclude(stage__in=[TrainingRun.Stage.DONE, TrainingRun.Stage.FAILED])
    for run in live.filter(heartbeat_at__lt=stale_before) | live.filter(
        heartbeat_at__isnull=True, created_at__lt=stale_before
    ):
        attempts = (run.progress or {}).get("attempts", 1)
        if attempts >= RUN_MAX_ATTEMPTS:
            _update(
                run,
                stage=TrainingRun.Stage.FAILED,
                finished_at=timezone.now(),
                error=f"gave up after {attempts} attempts; last stage {run.stage}",
            )
            continue
        _update(run, lease_owner="", progress={**(run.progress or {}), "attempts": attempts + 1})
        transaction.on_commit(lambda run_id=run.pk: training_run_execute.delay(run_id))
        requeued.append(run.pk)
    now = timezone.now()
    quarter_starts_today = now.day == 1 and now.month in (1, 4, 7, 10)
    if not (quarter_starts_today and now.hour < 4):  # the quarterly beat's time has passed
        training_run_start_quarterly()  # a missed beat; a no-op when the run exists
    return requeued


def eval_items(n: int | None = None) -> list[dict]:
    """The held-out set: workload problems whose hash puts them in the eval split."""
    n = n or settings.COGLOOP_EVAL_SIZE
    return [
        {"prompt": p.prompt, "answer": p.answer, "slice": p.slice, "kind": p.kind}
        for p in workload.problems(n, seed=settings.COGLOOP_EVAL_SEED, split="eval")
    ]


@transaction.atomic
def training_run_start(
    *,
    dataset: DatasetVersion,
    recipe: str = "lora-all",
    period: str | None = None,
    config: dict | None = None,
    enqueue: bool = True,
) -> TrainingRun:
    """A run of ``recipe`` on ``dataset`` for the quarter, on the training queue (unless
    ``enqueue`` is False: the caller executes it). Bad options are refused before any row."""
    from retrain.trainer.config import TrainConfig, TrainConfigError

    period = period or quarter_of(timezone.now().date())
    existing = TrainingRun.objects.filter(period=period).first()
    if existing:
        raise ApplicationError(
            f"quarter {period} already has training run {existing.pk} ({existing.stage})",
            code="run_exists",
            status=409,
            extra={"run_id": existing.pk},
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
    if enqueue:
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


def paired_bootstrap_gain(
    serving_rows: list[dict], candidate_rows: list[dict], *, samples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean gain, 2.5th, 97.5th percentile) of candidate minus serving accuracy, resampling
    the same held-out items for both (a paired bootstrap)."""
    import random

    diffs = [int(c["correct"]) - int(s["correct"]) for s, c in zip(serving_rows, candidate_rows)]
    if not diffs:
        return 0.0, 0.0, 0.0
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(samples))
    return sum(diffs) / n, means[int(0.025 * samples)], means[int(0.975 * samples) - 1]


def gate_decide(
    *,
    serving: dict,
    candidate: dict,
    min_gain: float,
    tolerance: float,
    ci: tuple[float, float] | None = None,
    min_slice_n: int = 1,
    slice_ci: dict[str, tuple[float, float]] | None = None,
) -> dict:
    """Promote on a significant overall accuracy gain (the 95 % bootstrap interval's low end
    above 0, when given) of at least ``min_gain``, with no slice of at least ``min_slice_n``
    items losing more than ``tolerance`` (smaller slices are too noisy to judge and are listed
    as unjudged) where, given ``slice_ci``, that loss is significant (the slice's paired
    95 % interval lies below zero). Returns {"promote": bool, "reason": str, "gain": float, "slice_changes",
    "unjudged_slices"}."""
    gain = candidate["overall"]["accuracy"] - serving["overall"]["accuracy"]
    changes = {
        name: round(block["accuracy"] - serving["slices"][name]["accuracy"], 4)
        for name, block in candidate["slices"].items()
        if name in serving["slices"] and block["accuracy"] is not None
    }
    judged = {name for name in changes if serving["slices"][name]["n"] >= min_slice_n}
    # A slice loses when its drop exceeds the tolerance and is not noise: the upper end of its
    # paired-bootstrap interval lies below zero (when intervals are given).
    losses = {
        name: -change
        for name, change in changes.items()
        if name in judged and -change > tolerance and (slice_ci is None or slice_ci[name][1] < 0)
    }
    extra = {"slice_changes": changes, "unjudged_slices": sorted(set(changes) - judged)}
    if slice_ci is not None:
        extra["slice_ci95"] = {
            name: [round(low, 4), round(high, 4)] for name, (low, high) in slice_ci.items()
        }
    decision = _gate_reason(gain=gain, losses=losses, min_gain=min_gain, tolerance=tolerance, ci=ci)
    return {**decision, **extra}


def _gate_reason(*, gain, losses, min_gain, tolerance, ci) -> dict:
    interval = f" (95% CI {ci[0]:+.3f} to {ci[1]:+.3f})" if ci else ""
    if losses:
        return {
            "promote": False,
            "reason": f"slices lost more than {tolerance:.0%}: {losses}",
            "gain": round(gain, 4),
        }
    if gain < min_gain:
        return {
            "promote": False,
            "reason": f"accuracy gain {gain:+.3f}{interval} is below the required {min_gain:+.3f}",
            "gain": round(gain, 4),
        }
    if ci and ci[0] <= 0:
        return {
            "promote": False,
            "reason": f"accuracy gain {gain:+.3f} is not significant{interval}",
            "gain": round(gain, 4),
        }
    return {
        "promote": True,
        "reason": f"accuracy gain {gain:+.3f}{interval}, no slice lost more than {tolerance:.0%}",
        "gain": round(gain, 4),
    }


def gate_from_rows(
    serving_rows: list[dict],
    candidate_rows: list[dict],
    *,
    serving: dict,
    candidate: dict,
    error_classes: dict[int, str],
) -> dict:
    """The gate with the settings' thresholds, the overall and per-slice paired bootstraps."""
    from retrain.trainer.evaluate import slice_members

    gain, low, high = paired_bootstrap_gain(serving_rows, candidate_rows)
    slice_ci = {}
    for name, idx in slice_members(serving_rows, error_classes=error_classes).items():
        _, s_low, s_high = paired_bootstrap_gain(
            [serving_rows[i] for i in idx], [candidate_rows[i] for i in idx]
        )
        slice_ci[name] = (s_low, s_high)
    decision = gate_decide(
        serving=serving,
        candidate=candidate,
        ci=(low, high),
        slice_ci=slice_ci,
        min_gain=settings.COGLOOP["GATE_MIN_GAIN"],
        tolerance=settings.COGLOOP["GATE_SLICE_TOLERANCE"],
        min_slice_n=settings.COGLOOP["GATE_MIN_SLICE_N"],
    )
    return {**decision, "ci95": [round(low, 4), round(high, 4)]}


def _record_evaluation(run: TrainingRun, version: ModelVersion, metrics: dict) -> None:
    Evaluation.objects.update_or_create(
        model_version=version, training_run=run, eval_set="workload-heldout", defaults={"metrics": metrics}
    )


def _train_and_register(run: TrainingRun, base: ModelVersion, base_dir: Path) -> ModelVersion:
    """Fine-tune, merge, and register the candidate (copied into the store with its manifest)."""
    from retrain.trainer.config import TrainConfig
    from retrain.trainer.train import finetune

    _update(run, stage=TrainingRun.Stage.TRAINING)
    train_config = TrainConfig(**run.config)
    samples = selectors.reflection_rows(run.dataset)
    replay = selectors.replay_samples(version=base, limit=int(train_config.replay_ratio * len(samples)))
    _update(
        run,
        progress={**(run.progress or {}), "reflection_samples": len(samples), "replay_samples": len(replay)},
    )
    # Keyed by the row's creation time too: a run id reused after a database reset must never
    # resume another run's checkpoint. A resumed attempt of this run finds its own.
    work = Path(settings.VAR_DIR) / "runs" / f"{run.pk}-{run.created_at:%Y%m%dT%H%M%S%f}"
    history: list[dict] = list(run.loss_history or [])  # a resumed attempt continues the curve

    def on_progress(p):
        history[:] = [h for h in history if h["step"] < p["step"]]
        history.append({k: v for k, v in p.items() if k != "max_steps"})
        _update(run, progress={**(run.progress or {}), **p}, loss_history=history)

    summary = finetune(
        base_dir=base_dir,
        samples=samples + replay,
        out_dir=work / "merged",
        work_dir=work / "trainer",
        config=train_config,
        on_progress=on_progress,
    )
    # Every attempt the trainer made (seed, epochs, per-epoch validation, why it stopped) and
    # the one it chose; "attempts" in progress already counts the workers' tries.
    training_attempts = {
        "training_attempts": [
            {k: v for k, v in a.items() if k not in ("loss_history", "weights")} for a in summary["attempts"]
        ],
        "chosen_attempt": summary["chosen_attempt"],
    }
    _update(run, stage=TrainingRun.Stage.COMPRESS, progress={**(run.progress or {}), **training_attempts})
    name = f"{base.name.removesuffix('-base')}-{run.period.lower()}-r{run.pk}"
    existing = ModelVersion.objects.filter(name=name).first()
    if existing:  # registered by an attempt that died before recording it on the run
        return existing
    return inference_services.model_version_register(
        name=name,
        source_dir=work / "merged",
        base_model_path=base.base_model_path,
        recipe=run.recipe,
        metrics={
            "training": {
                **{k: summary[k] for k in ("train_loss", "steps", "seconds", "samples")},
                "reflection_samples": len(samples),
                "replay_samples": len(replay),
                **training_attempts,
            }
        },
        parent=base,
    )


def training_run_execute(*, run_id: int) -> TrainingRun | None:
    """Run every stage of a training run. Long: holds a DB lease, never a transaction."""
    from retrain.trainer.evaluate import error_class, evaluate_dir, summarize

    run = training_run_acquire(run_id=run_id)
    if run is None:
        return None
    try:
        items = eval_items()
        base = run.base_version
        base_dir = inference_services.store_path(base.weights_path)
        _update(run, stage=TrainingRun.Stage.BASELINE)
        serving_rows = evaluate_dir(base_dir, items, expected_manifest=base.manifest)
        # The serving model's own error classes on the held-out set become slices of both.
        error_classes = {i: c for i, r in enumerate(serving_rows) if (c := error_class(r))}
        serving_metrics = {
            **summarize(serving_rows, error_classes=error_classes),
            **selectors.review_metrics(base),
        }
        _record_evaluation(run, base, serving_metrics)

        candidate = run.result_version
        if candidate is None:  # a resumed run whose candidate is registered skips training
            candidate = _train_and_register(run, base, base_dir)
        _update(run, stage=TrainingRun.Stage.CANDIDATE, result_version_id=candidate.pk)
        candidate_rows = evaluate_dir(
            inference_services.store_path(candidate.weights_path), items, expected_manifest=candidate.manifest
        )
        candidate_metrics = summarize(candidate_rows, error_classes=error_classes)
        _record_evaluation(run, candidate, candidate_metrics)

        _update(run, stage=TrainingRun.Stage.GATE)
        decision = gate_from_rows(
            serving_rows,
            candidate_rows,
            serving=serving_metrics,
            candidate=candidate_metrics,
            error_classes=error_classes,
        )
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
        _update(
            run,
            stage=TrainingRun.Stage.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            finished_at=timezone.now(),
        )
        raise
