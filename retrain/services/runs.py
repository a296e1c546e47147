"""Training runs: the quarterly start, the database lease, every stage, the gate's verdict."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from cogloop.errors import ApplicationError
from cogloop.outbox import outbox_enqueue
from inference import services as inference_services
from inference.engine import chat
from inference.models import ModelVersion
from retrain import gate, periods, selectors
from retrain.models import DatasetVersion, EvalSet, EvalSetVersion, Evaluation, TrainingRun
from retrain.services import evalsets
from retrain.services.datasets import dataset_version_verify_files
from retrain.trainer.config import TrainConfig, TrainConfigError

log = logging.getLogger("cogloop.retrain")

TRAINING_RUN_EXECUTE_TASK = "retrain.training_run_execute"
# Task kinds whose strategy the gate judges as a slice (retrain.trainer.evaluate.TASK_STRATEGY).
TASK_KINDS = ("chain", "pattern", "analogy")


def training_run_start_quarterly() -> TrainingRun | None:
    """The beat entry: this quarter's run on the latest dataset, once."""
    period = periods.quarter_of(timezone.now().date())
    dataset = DatasetVersion.objects.order_by("-period").first()
    if dataset is None or TrainingRun.objects.filter(period=period).exists():
        return None
    try:
        return training_run_start(dataset=dataset, period=period)
    except ApplicationError as exc:  # e.g. no evaluation set yet: said in the log, tried next beat
        log.warning("no training run for %s: %s", period, exc.message)
        return None


RUN_MAX_ATTEMPTS = 3


def training_run_reconcile() -> list[int]:
    """Make missed or doubled beats and killed workers harmless (runs every few minutes).

    A run whose lease went stale mid-stage is handed to a worker again (it resumes from its
    last finished stage) or, after RUN_MAX_ATTEMPTS, marked failed with the reason. A quarter
    whose beat was missed gets its run. Returns the ids of runs re-enqueued.
    """
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
        outbox_enqueue(task_name=TRAINING_RUN_EXECUTE_TASK, payload={"run_id": run.pk})
        requeued.append(run.pk)
    now = timezone.now()
    quarter_starts_today = now.day == 1 and now.month in (1, 4, 7, 10)
    if not (quarter_starts_today and now.hour < 4):  # the quarterly beat's time has passed
        training_run_start_quarterly()  # a missed beat; a no-op when the run exists
    return requeued


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
    ``enqueue`` is False: the caller executes it). Bad options are refused before any row.
    A quarter has one run; a failed or rejected one is retried with ``training_run_retry``."""
    today = timezone.now().date()
    period = periods.quarter_checked(period or periods.quarter_of(today), today=today)
    existing = TrainingRun.objects.filter(period=period).first()
    if existing:
        retryable = _retryable(existing)
        raise ApplicationError(
            f"quarter {period} already has training run {existing.pk} ({existing.stage}"
            f"{', rejected' if existing.decision and not existing.decision.get('promote') else ''})"
            + ("; retry it instead" if retryable else ""),
            code="run_exists",
            status=409,
            extra={"run_id": existing.pk, "retryable": retryable},
        )
    train_config = _train_config(recipe, config)
    base = _active_version()
    _required_eval_sets()
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                period=period,
                dataset=dataset,
                base_version=base,
                recipe=recipe,
                config=train_config.to_dict(),
            )
    except IntegrityError:  # a concurrent start for the quarter committed first
        raise ApplicationError(
            f"quarter {period} already has a training run", code="run_exists", status=409
        ) from None
    if enqueue:
        outbox_enqueue(task_name=TRAINING_RUN_EXECUTE_TASK, payload={"run_id": run.pk})
    return run


def _train_config(recipe: str, config: dict | None) -> TrainConfig:
    try:
        train_config = TrainConfig(recipe=recipe, **(config or {}))
        train_config.validate()
    except TypeError as exc:
        raise ApplicationError(f"unknown training option: {exc}", code="invalid_config") from exc
    except TrainConfigError as exc:
        raise ApplicationError(str(exc), code="invalid_config") from exc
    return train_config


def _active_version() -> ModelVersion:
    base = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    if base is None:
        raise ApplicationError("no active model version to train from", code="no_active_model")
    return base


def _retryable(run: TrainingRun) -> bool:
    """A run ended without a promotion: it failed, or the gate rejected its candidate."""
    if run.stage == TrainingRun.Stage.FAILED:
        return True
    return run.stage == TrainingRun.Stage.DONE and not (run.decision or {}).get("promote")


@transaction.atomic
def training_run_retry(
    *,
    run_id: int,
    recipe: str | None = None,
    config: dict | None = None,
    dataset: DatasetVersion | None = None,
    enqueue: bool = True,
) -> TrainingRun:
    """Another attempt at a failed or rejected run, in its own period. The earlier attempt's
    stage, decision, error, candidate and config go to ``history``; the new attempt starts from
    the active version on the given (else the latest) dataset, with new options if given."""
    run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
    if run is None:
        raise ApplicationError("no such training run", code="not_found", status=404)
    if not _retryable(run):
        raise ApplicationError(
            f"training run {run.pk} is {run.stage}"
            + (" and promoted its candidate" if run.stage == TrainingRun.Stage.DONE else "")
            + ": only a failed or rejected run is retried",
            code="not_retryable",
            status=409,
        )
    options = {k: v for k, v in {**run.config, **(config or {})}.items() if k != "recipe"}
    train_config = _train_config(recipe or run.recipe, options)
    base = _active_version()
    run.history = [
        *run.history,
        {
            "attempt": run.attempt,
            "stage": run.stage,
            "decision": {k: v for k, v in (run.decision or {}).items() if k in ("promote", "reason", "gain")},
            "error": run.error,
            "result_version": run.result_version.name if run.result_version else None,
            "recipe": run.recipe,
            "config": run.config,
            "dataset": run.dataset.period,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        },
    ]
    run.attempt += 1
    run.dataset = dataset or DatasetVersion.objects.order_by("-period").first() or run.dataset
    run.base_version = base
    run.recipe = train_config.recipe
    run.config = train_config.to_dict()
    run.stage = TrainingRun.Stage.QUEUED
    run.progress, run.loss_history, run.decision = {}, [], {}
    run.error, run.lease_owner = "", ""
    run.heartbeat_at = run.finished_at = None
    run.result_version = None
    run.save()
    if enqueue:
        outbox_enqueue(task_name=TRAINING_RUN_EXECUTE_TASK, payload={"run_id": run.pk})
    return run


def _update(run: TrainingRun, **fields) -> None:
    for k, v in fields.items():
        setattr(run, k, v)
    run.heartbeat_at = timezone.now()
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=run.heartbeat_at, **fields)


def _lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


LEASE_STALE_AFTER = timedelta(minutes=5)
# The lease beats on this clock while a run works, whatever the work reports: an evaluation
# or a merge of a large model can go minutes without a progress event.
LEASE_HEARTBEAT_S = 60.0


@contextmanager
def lease_heartbeat(run: TrainingRun, *, every: float | None = None):
    """Renew ``run``'s lease every ``every`` seconds (LEASE_HEARTBEAT_S) from a thread of its
    own while the block runs, so that a long stage never looks like a dead worker to the
    reconcile. The renewal is conditional on this process still owning the lease; a lost
    lease is logged and the beating stops (the owner that took it carries the run)."""
    stop = threading.Event()
    owner, interval = _lease_owner(), LEASE_HEARTBEAT_S if every is None else every

    def beat() -> None:
        try:
            while not stop.wait(interval):
                held = TrainingRun.objects.filter(pk=run.pk, lease_owner=owner).update(
                    heartbeat_at=timezone.now()
                )
                if not held:
                    log.error("training run %s: lease taken by another worker; heartbeat stops", run.pk)
                    return
        except Exception:  # a database blip: the next progress event or the reconcile decides
            log.exception("training run %s: heartbeat failed", run.pk)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"lease-heartbeat-{run.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 10)


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


def gate_from_rows(
    serving_rows: list[dict],
    candidate_rows: list[dict],
    *,
    serving: dict,
    candidate: dict,
    error_classes: dict[int, str],
) -> dict:
    """The gate with the settings' thresholds, slices from the rows and the serving model's errors."""
    # The trainer's evaluation module loads torch; only a process that evaluates needs it.
    from retrain.trainer.evaluate import slice_members

    return gate.gate_from_rows(
        serving_rows,
        candidate_rows,
        serving=serving,
        candidate=candidate,
        slices=slice_members(serving_rows, error_classes=error_classes),
        min_gain=settings.COGLOOP["GATE_MIN_GAIN"],
        tolerance=settings.COGLOOP["GATE_SLICE_TOLERANCE"],
        min_slice_n=settings.COGLOOP["GATE_MIN_SLICE_N"],
    )


def _own_errors(rows: list[dict], classify) -> dict[str, int]:
    """How many held-out items a model got wrong, by error class: the dataset build retires
    samples of a class the serving model no longer makes."""
    counts: dict[str, int] = {}
    for row in rows:
        if cls := classify(row):
            counts[cls] = counts.get(cls, 0) + 1
    return counts


def eval_set_versions() -> list[EvalSetVersion]:
    """The evaluation sets a run measures with: the latest version of every set, global and per
    app (imported ones, the apps' golden sets grown from review, the embedded workload's)."""
    latest = []
    for eval_set in EvalSet.objects.order_by("name", "app_id"):
        version = eval_set.versions.order_by("-number").first()
        if version is not None and version.item_count:
            latest.append(version)
    return latest


def _required_eval_sets() -> list[EvalSetVersion]:
    versions = eval_set_versions()
    if not versions:
        raise ApplicationError(
            "no evaluation set to gate on: import one (manage.py evalset import NAME FILE)",
            code="no_eval_set",
        )
    return versions


def _eval_items(versions: list[EvalSetVersion]) -> list[dict]:
    """Every item of ``versions`` in the evaluator's shape. A tag naming one of the workload's
    task kinds is also the item's kind (its strategy slice)."""
    items = []
    for version in versions:
        for item in evalsets.eval_set_items(version=version):
            kind = next((t for t in item["tags"] if t in TASK_KINDS), None)
            items.append({**item, "kind": kind, "eval_set": version.eval_set.name})
    return items


def _eval_set_label(versions: list[EvalSetVersion]) -> str:
    return ", ".join(f"{v.eval_set.name} v{v.number}" for v in versions)


def _record_evaluation(run: TrainingRun, version: ModelVersion, metrics: dict, label: str) -> None:
    Evaluation.objects.update_or_create(
        model_version=version, training_run=run, eval_set=label[:100], defaults={"metrics": metrics}
    )


def _train_and_register(run: TrainingRun, base: ModelVersion, base_dir: Path) -> ModelVersion:
    """Fine-tune, merge, and register the candidate (copied into the store with its manifest)."""
    # Torch and peft load only in the process that trains.
    from retrain.trainer.train import finetune
    from retrain.trainer.verifier import VerifierConfig, fit_verifier_dir, verdict_items

    _update(run, stage=TrainingRun.Stage.TRAINING)
    train_config = TrainConfig(**run.config)
    # Corrections are rendered as the base model writes its reasoning (its directory says how).
    samples = selectors.reflection_rows(
        run.dataset,
        style=chat.reasoning_style(base_dir),
        self_correction_share=train_config.self_correction_share,
    )
    replay = selectors.replay_samples(version=base, limit=int(train_config.replay_ratio * len(samples)))
    _update(
        run,
        progress={**(run.progress or {}), "reflection_samples": len(samples), "replay_samples": len(replay)},
    )
    # Keyed by the row's creation time too: a run id reused after a database reset must never
    # resume another run's checkpoint. A resumed attempt of this run finds its own.
    work = Path(settings.VAR_DIR) / "runs" / f"{run.pk}-{run.created_at:%Y%m%dT%H%M%S%f}-a{run.attempt}"
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
    # The head's confidence learns what "right" means on this model's own answers (verdicts
    # against the corrections and the checked replay), before the candidate is measured.
    verifier = fit_verifier_dir(
        work / "merged",
        verdict_items(samples + replay, limit=settings.COGLOOP["VERIFIER_PROMPTS"], seed=train_config.seed),
        VerifierConfig(samples=2, seed=train_config.seed),
    )
    # Every attempt the trainer made (seed, epochs, per-epoch validation, why it stopped) and
    # the one it chose; "attempts" in progress already counts the workers' tries.
    training_attempts = {
        "training_attempts": [
            {k: v for k, v in a.items() if k not in ("loss_history", "weights")} for a in summary["attempts"]
        ],
        "chosen_attempt": summary["chosen_attempt"],
    }
    _update(
        run,
        stage=TrainingRun.Stage.COMPRESS,
        progress={**(run.progress or {}), **training_attempts, "verifier": verifier},
    )
    style_file = base_dir / chat.STYLE_FILE
    if style_file.is_file():  # the candidate writes as its base does
        shutil.copyfile(style_file, work / "merged" / chat.STYLE_FILE)
    name = f"{base.name.removesuffix('-base')}-{run.period.lower()}-r{run.pk}"
    if run.attempt > 1:
        name += f"-a{run.attempt}"
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
            },
            "verifier": verifier,
        },
        parent=base,
    )


def training_run_execute(*, run_id: int) -> TrainingRun | None:
    """Run every stage of a training run. Long: holds a DB lease, never a transaction."""
    run = training_run_acquire(run_id=run_id)
    if run is None:
        return None
    with lease_heartbeat(run):
        return _execute(run)


def _execute(run: TrainingRun) -> TrainingRun:
    """training_run_execute's stages, under the run's lease."""
    # Torch loads only in the process that evaluates.
    from retrain.trainer.evaluate import error_class, evaluate_dir, summarize

    try:
        dataset_version_verify_files(run.dataset)
        versions = _required_eval_sets()
        items = _eval_items(versions)
        label = _eval_set_label(versions)
        base = run.base_version
        base_dir = inference_services.store_path(base.weights_path)
        _update(run, stage=TrainingRun.Stage.BASELINE)
        serving_rows = evaluate_dir(base_dir, items, expected_manifest=base.manifest)
        # The serving model's own error classes on the held-out set become slices of both.
        error_classes = {i: c for i, r in enumerate(serving_rows) if (c := error_class(r))}
        serving_metrics = {
            **summarize(serving_rows, error_classes=error_classes),
            **selectors.review_metrics(base),
            "own_errors": _own_errors(serving_rows, error_class),
        }
        _record_evaluation(run, base, serving_metrics, label)

        candidate = run.result_version
        if candidate is None:  # a resumed run whose candidate is registered skips training
            candidate = _train_and_register(run, base, base_dir)
        _update(run, stage=TrainingRun.Stage.CANDIDATE, result_version_id=candidate.pk)
        candidate_rows = evaluate_dir(
            inference_services.store_path(candidate.weights_path), items, expected_manifest=candidate.manifest
        )
        candidate_metrics = {
            **summarize(candidate_rows, error_classes=error_classes),
            "own_errors": _own_errors(candidate_rows, error_class),
        }
        _record_evaluation(run, candidate, candidate_metrics, label)

        _update(run, stage=TrainingRun.Stage.GATE)
        decision = gate_from_rows(
            serving_rows,
            candidate_rows,
            serving=serving_metrics,
            candidate=candidate_metrics,
            error_classes=error_classes,
        )
        decision.update(
            serving=serving_metrics,
            candidate=candidate_metrics,
            eval_sets=[
                {
                    "name": v.eval_set.name,
                    "app": v.eval_set.app_id,
                    "version": v.number,
                    "sha256": v.sha256,
                    "n": v.item_count,
                }
                for v in versions
            ],
        )
        decision["reason"] += f" on {label}"
        if decision["promote"] and (problem := inference_services.model_version_verify(version=candidate)):
            decision.update(promote=False, reason=f"verification failed: {problem}")
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
        log.exception("training run %s failed", run.pk)
        _update(
            run,
            stage=TrainingRun.Stage.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            finished_at=timezone.now(),
        )
        raise
