"""``finetune``: samples in, a merged safetensors model directory out, through validated attempts.

Attempts. Attempt k trains from the base model with seed ``seed + k`` and its own learning
rate and curriculum: the previous attempt's, with ``retry_lr_factor`` times the rate when that
attempt's best epoch had damaged the held-out replay answers, and without the curriculum when
it kept replay but left a group unfixed (it under-fitted). Attempts stop at the first one that converged (its best
epoch fixed every error group with replay intact), after a retry that did not beat the
attempts before it, or after ``max_attempts``; the converged attempt, else the best by the
validation signal (validation.rank), is merged and saved.

Work directory and resume. ``work_dir/attempt-<k>/`` holds attempt k's checkpoints (one per
epoch, the newest kept; each carries the attempt's validation history in its trainer state)
and ``best-epoch-<e>.safetensors``, the trainable weights of its best epoch so far.
``work_dir/attempts.json`` lists the finished attempts. A call that finds a work directory
(a killed worker's) keeps the finished attempts as they are, resumes the unfinished one from
its newest complete checkpoint (an attempt whose checkpoint already records its stop is only
finished), and goes on: the result is the one an uninterrupted call gives.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from transformers import TrainingArguments
from transformers.trainer_callback import PrinterCallback

from inference.engine import loading
from inference.engine.metahead import MetaHead, MetaHeadConfig, load_head, save_head

from . import validation
from .config import TrainConfig
from .data import CurriculumSampler, PairCollator, PairDataset
from .head_fit import fit_head, head_inputs
from .recipes import apply_recipe
from .trainer import (
    CompositeLossTrainer,
    MetaModel,
    ProgressCallback,
    ProgressHook,
    last_complete_checkpoint,
    meta_rows_loss,
)

__all__ = ["finetune", "fit_head", "meta_rows_loss"]

log = logging.getLogger("cogloop.trainer")
ATTEMPTS_FILE = "attempts.json"


def _build(
    base_dir: Path, config: TrainConfig, samples: list[dict[str, Any]]
) -> tuple[MetaModel, Any, PairDataset, bool]:
    lm, tokenizer = loading.load_model(base_dir)
    head = load_head(base_dir) or MetaHead(MetaHeadConfig.for_hidden(lm.config.hidden_size))
    lm = apply_recipe(lm, config)
    dataset = PairDataset(tokenizer, samples, config.max_length)
    train_head = config.beta > 0 and dataset.meta_rows > 0
    head.requires_grad_(train_head)
    return MetaModel(lm, head), tokenizer, dataset, train_head


def _write_json(path: Path, data: Any) -> None:
    """Whole or not at all: a worker killed mid-write leaves the previous file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _save_weights(model: MetaModel, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    safetensors.torch.save_file(model.trainable_state(), str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path)


def _attempt_settings(config: TrainConfig, finished: list[dict[str, Any]]) -> tuple[int, float, bool]:
    """(seed, learning rate, curriculum) of the next attempt, from the ones before it.

    An attempt whose best epoch damaged the replay answers is retried at ``retry_lr_factor``
    times its rate. One that kept replay but did not fix its groups under-fitted: its retry
    drops the curriculum (``retry_without_curriculum``), so every epoch trains on every
    correction instead of a share that starts at ``curriculum_start``."""
    lr, curriculum = config.learning_rate, config.curriculum
    for a in finished:
        lr = a["learning_rate"]
        curriculum = a.get("curriculum", config.curriculum)
        if not a["best"].get("replay_ok", True):
            lr *= config.retry_lr_factor
        elif not a["best"].get("fixed", True) and config.retry_without_curriculum:
            curriculum = False
    return config.seed + len(finished), lr, curriculum


def _run_attempt(
    *,
    index: int,
    base_dir: Path,
    samples: list[dict[str, Any]],
    checks: list[validation.Check],
    attempt_dir: Path,
    config: TrainConfig,
    seed: int,
    learning_rate: float,
    curriculum_on: bool,
    step_offset: int,
    on_progress: ProgressHook | None,
) -> dict[str, Any]:
    """Train one attempt (or finish a killed one) and return its record for attempts.json."""
    torch.manual_seed(seed)
    model, tokenizer, dataset, _ = _build(base_dir, config, samples)
    model.train()
    validated = bool(checks)
    epochs = config.max_epochs if validated else config.epochs
    curriculum = None
    if curriculum_on:
        curriculum = CurriculumSampler(
            [r["kind"] for r in dataset.rows],
            start=config.curriculum_start,
            end=config.curriculum_end,
            # The share ramps over ``epochs`` also when validation may stop earlier or later:
            # a ramp stretched over max_epochs would keep an early-stopped attempt on replay.
            epochs=max(1, round(config.epochs)) if config.max_steps <= 0 else 1,
            seed=seed,
        )
    resume = last_complete_checkpoint(attempt_dir)
    args = TrainingArguments(
        output_dir=str(attempt_dir),
        per_device_train_batch_size=config.batch_size,
        num_train_epochs=epochs,
        max_steps=config.max_steps,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=2,
        logging_steps=1,
        save_strategy="epoch",
        save_total_limit=1,
        report_to=[],
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
        seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = CompositeLossTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=PairCollator(tokenizer.pad_token_id),
        train_config=config,
        curriculum=curriculum,
    )
    progress = ProgressCallback(
        on_progress, lambda: trainer.last_terms, attempt=index, step_offset=step_offset
    )
    trainer.add_callback(progress)
    trainer.remove_callback(PrinterCallback)  # progress goes to on_progress (the run row) instead

    def save_best(epoch: int) -> None:
        _save_weights(model, attempt_dir / f"best-epoch-{epoch}.safetensors")

    if validated:
        trainer.add_callback(
            validation.ValidationCallback(
                lm=model.lm,
                tokenizer=tokenizer,
                checks=checks,
                config=config,
                save_best=save_best,
                on_entry=lambda e: log.info("attempt %s validation %s", index, json.dumps(e)),
            )
        )
    entries: list[dict[str, Any]] = []
    steps = 0
    if resume:
        state = json.loads((Path(resume) / "trainer_state.json").read_text())
        entries, steps = validation.history(state["log_history"]), int(state["global_step"])
        log.info("attempt %s resuming from %s", index, resume)
    started = time.monotonic()
    train_loss = None
    if not (entries and "stop" in entries[-1]):  # else killed after its last epoch: only finish
        result = trainer.train(resume_from_checkpoint=resume)
        train_loss = round(float(result.training_loss), 5)
        steps = trainer.state.global_step
        entries = validation.history(trainer.state.log_history)
    seconds = time.monotonic() - started
    if validated:
        best = validation.best_of(entries) or entries[-1]
        stop = entries[-1].get("stop", "max_epochs")
        converged = bool(best.get("fixed")) and bool(best.get("replay_ok"))
    else:
        # Without held-out prompts there is nothing to choose by: the last weights are kept.
        best = {"epoch": round(float(trainer.state.epoch or 0))}
        save_best(best["epoch"])
        stop, converged = "epochs", True
    record = {
        "attempt": index,
        "seed": seed,
        "learning_rate": learning_rate,
        "curriculum": curriculum_on,
        "epochs_run": max((e["epoch"] for e in entries), default=best["epoch"]),
        "steps": steps,
        "stop": stop,
        "converged": converged,
        "best_epoch": best["epoch"],
        "best": {k: best[k] for k in ("corrections", "replay", "fixed", "replay_ok") if k in best},
        "weights": f"{attempt_dir.name}/best-epoch-{best['epoch']}.safetensors",
        "validation": entries,
        "train_loss": train_loss,
        "seconds": round(seconds, 1),
        "resumed_from": Path(resume).name if resume else None,
        "loss_history": progress.history,
        "tokens": trainer.tokens_seen,
        "main_tokens": trainer.main_tokens,
    }
    log.info(
        "attempt %s: %s after %s epochs, best epoch %s %s",
        index,
        stop,
        record["epochs_run"],
        best["epoch"],
        record["best"],
    )
    return record


def _worth_another(attempts: list[dict[str, Any]]) -> bool:
    """Whether to start another attempt: none converged yet, and the last retry (if any) beat
    the attempts before it. A retry that did not shows the shortfall is the data's (an error
    group this model does not learn from these corrections), not the draw's."""
    if any(a["converged"] for a in attempts):
        return False
    if len(attempts) < 2:
        return True
    return validation.rank(attempts[-1]["best"]) > max(validation.rank(a["best"]) for a in attempts[:-1])


def _choose(attempts: list[dict[str, Any]]) -> tuple[int, str]:
    converged = [a for a in attempts if a["converged"]]
    if converged:
        return converged[0]["attempt"], "converged"
    best = max(attempts, key=lambda a: (validation.rank(a["best"]), -a["attempt"]))
    return best["attempt"], f"no attempt converged in {len(attempts)}; the best by validation"


def finetune(
    *,
    base_dir: Path,
    samples: list[dict[str, Any]],
    out_dir: Path,
    work_dir: Path,
    config: TrainConfig,
    on_progress: ProgressHook | None = None,
) -> dict[str, Any]:
    """Fine-tune the model in ``base_dir`` on ``samples``; write merged safetensors to ``out_dir``.

    Validation prompts are held out of ``samples`` (validation.py) and decide each attempt's
    length and kept epoch (see the module's doc). The metacognition head (the base's, or a
    fresh one) trains beside the model when beta > 0 and some samples carry step labels; it is
    saved next to the weights, marked trained. Returns a summary (also written to
    ``out_dir/recipe.json``) with every attempt and which one was chosen.
    """
    config.validate()
    split = validation.split_samples(samples, config)
    work_dir.mkdir(parents=True, exist_ok=True)
    attempts_file = work_dir / ATTEMPTS_FILE
    attempts: list[dict[str, Any]] = json.loads(attempts_file.read_text()) if attempts_file.exists() else []
    resumed_from = None
    started = time.monotonic()
    max_attempts = config.max_attempts if split.checks else 1
    while len(attempts) < max_attempts and _worth_another(attempts):
        index = len(attempts)
        seed, lr, curriculum_on = _attempt_settings(config, attempts)
        record = _run_attempt(
            index=index,
            base_dir=base_dir,
            samples=split.train,
            checks=split.checks,
            attempt_dir=work_dir / f"attempt-{index}",
            config=config,
            seed=seed,
            learning_rate=lr,
            curriculum_on=curriculum_on,
            step_offset=sum(a["steps"] for a in attempts),
            on_progress=on_progress,
        )
        resumed_from = resumed_from or (
            f"attempt-{index}/{record['resumed_from']}" if record["resumed_from"] else None
        )
        attempts.append(record)
        _write_json(attempts_file, attempts)
        # The attempt is recorded: only its best weights are still needed.
        for checkpoint in (work_dir / f"attempt-{index}").glob("checkpoint-*"):
            shutil.rmtree(checkpoint)
        for weights in (work_dir / f"attempt-{index}").glob("best-epoch-*.safetensors"):
            if f"{weights.parent.name}/{weights.name}" != record["weights"]:
                weights.unlink()
    seconds = time.monotonic() - started
    chosen, why = _choose(attempts)
    record = attempts[chosen]

    torch.manual_seed(record["seed"])
    model, tokenizer, dataset, train_head = _build(base_dir, config, split.train)
    model.load_trainable_state(
        safetensors.torch.load_file(str(work_dir / record["weights"])), source=record["weights"]
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lm: Any = model.lm
    if hasattr(lm, "merge_and_unload"):
        lm = lm.merge_and_unload()
    lm.eval()
    head = model.head
    head_fit = None
    if train_head and config.head_fit_steps > 0:
        inputs = head_inputs(lm, dataset, PairCollator(tokenizer.pad_token_id), config.batch_size * 4)
        if inputs is not None:
            head_fit = fit_head(head, inputs, steps=config.head_fit_steps, lr=config.head_learning_rate)
    out_dir.mkdir(parents=True, exist_ok=True)
    lm.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    if train_head:
        head.config.trained = True
        save_head(head, out_dir)
    tokens = sum(a["tokens"] for a in attempts)
    train_seconds = sum(a["seconds"] for a in attempts)
    summary = {
        "config": config.to_dict(),
        "samples": len(dataset),
        "validation": {"checks": split.counts(), "skipped": split.skipped},
        "attempts": attempts,
        "chosen_attempt": chosen,
        "chosen_because": why,
        "trainable_parameters": trainable,
        "train_loss": record["train_loss"],
        "steps": sum(a["steps"] for a in attempts),
        "seconds": round(seconds, 1),
        "loss_history": [h for a in attempts for h in a["loss_history"]],
        "warnings": config.warnings(),
        "tokens": tokens,
        "main_tokens": sum(a["main_tokens"] for a in attempts),
        "tokens_per_second": round(tokens / train_seconds, 1) if train_seconds else None,
        "resumed_from": resumed_from,
        "meta_rows": dataset.meta_rows,
        "meta_loss": "trained" if train_head else "absent: beta is 0 or no sample carries step labels",
        "head_fit": head_fit,
    }
    (out_dir / "recipe.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
