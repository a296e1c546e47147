"""Validation during a fine-tune: held-out corrections and replay prompts, answered greedily
after every epoch, decide when an attempt stops and which epoch's weights it keeps.

Split. The corrections (samples with a ``rejected`` response whose original was wrong) are
grouped by what they correct: ``<error class>/<strategy>``, the checker's class of the
original (``arithmetic`` for a wrong claim, ``inconsistent_answer``, ``wrong_operation``; the
same classes as the gate's ``error:<class>`` slices) and the strategy of the first step the
correction changed (``deduction``, ``induction``, ``analogy``, or ``answer`` when only the
answer changed). A seeded draw holds out ``validation_share`` of the prompts of every group
(at least ``validation_min`` in all), and ``replay_validation_share`` of the replay prompts
(answers the model gave right and should keep, with corrections whose original was already
right). A prompt is held out with every sample it has. The split depends on the base seed
only: every attempt of a run validates on the same prompts.

Check. A held-out prompt passes when the greedy answer's number equals the sample's answer
and every wrong claim it makes is corrected by a later step (the checker's view: a right
answer from wrong steps it never took back is not a fixed correction; one that catches its
own slip is).

Epoch verdict. ``fixed``: every group with at least ``validation_group_min`` prompts, and the
corrections as a whole, pass at ``fixed_threshold`` or more. ``replay_ok``: the replay share
passes at no less than before training (epoch 0) minus ``replay_tolerance``. Epochs rank by
(replay_ok, corrections' accuracy, replay accuracy), the earlier epoch winning a tie.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from inference.engine.generation import GenerationParams, generate_batch
from inference.engine.parser import parse_output
from inference.engine.scoring import score_output

from .config import TrainConfig
from .evaluate import correction_distances

REPLAY = "replay"
VALIDATION_KEY = "validation"  # entries of TrainerState.log_history that carry an epoch's verdict


@dataclass(frozen=True)
class Check:
    prompt: str
    answer: float | None
    group: str  # REPLAY or a corrections' group


@dataclass
class Split:
    train: list[dict[str, Any]]
    checks: list[Check]
    skipped: str | None = None  # why there is no validation

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.checks:
            out[c.group] = out.get(c.group, 0) + 1
        return dict(sorted(out.items()))


def correction_group(sample: dict[str, Any]) -> str | None:
    """What a reflection sample corrects, ``<error class>/<strategy>``; None when its original
    was already right (nothing to fix) or it is a replay row."""
    if not sample.get("rejected"):
        return None
    chosen, rejected = parse_output(sample["chosen"]), parse_output(sample["rejected"])
    parts = score_output(rejected)
    if parts.wrong_claims:
        error = "arithmetic"
    elif rejected.answer_value == chosen.answer_value:
        return None
    elif not parts.answer_agreement:
        error = "inconsistent_answer"
    else:
        error = "wrong_operation"
    where = "answer"
    for i, step in enumerate(chosen.steps):
        if i >= len(rejected.steps) or rejected.steps[i].text.strip() != step.text.strip():
            where = step.strategy
            break
    return f"{error}/{where}"


def _allocate(sizes: dict[str, int], total: int) -> dict[str, int]:
    """``total`` spread over groups in proportion to their sizes (largest remainder), never
    taking a group's last prompt."""
    n = sum(sizes.values())
    exact = {g: total * s / n for g, s in sizes.items()}
    out = {g: min(int(x), max(0, sizes[g] - 1)) for g, x in exact.items()}
    for g in sorted(sizes, key=lambda g: (exact[g] - int(exact[g]), sizes[g], g), reverse=True):
        if sum(out.values()) >= total:
            break
        if out[g] < sizes[g] - 1:
            out[g] += 1
    return out


def split_samples(samples: list[dict[str, Any]], config: TrainConfig) -> Split:
    """Hold out validation prompts (see the module's doc); the rest is the training data."""
    by_prompt: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        by_prompt.setdefault(s["prompt"], []).append(s)
    groups: dict[str, list[str]] = {}
    kept: list[str] = []
    for prompt, rows in by_prompt.items():
        found = [g for r in rows if (g := correction_group(r))]
        if found:
            groups.setdefault(found[0], []).append(prompt)
        else:
            kept.append(prompt)
    n_corrections = sum(len(v) for v in groups.values())
    if config.validation_share <= 0:
        return Split(samples, [], skipped="validation_share is 0")
    if n_corrections < 2 * config.validation_min:
        return Split(
            samples,
            [],
            skipped=f"{n_corrections} corrections; validation needs {2 * config.validation_min}",
        )
    rng = random.Random(config.seed)
    total = max(config.validation_min, round(config.validation_share * n_corrections))
    held: dict[str, str] = {}
    quota = _allocate({g: len(v) for g, v in groups.items()}, total)
    for g in sorted(groups):
        for prompt in rng.sample(sorted(groups[g]), quota[g]):
            held[prompt] = g
    n_replay = round(config.replay_validation_share * len(kept))
    if len(kept) >= 2 * config.validation_min:
        n_replay = max(config.validation_min, n_replay)
    for prompt in rng.sample(sorted(kept), min(n_replay, len(kept) // 2)):
        held[prompt] = REPLAY
    checks = [
        Check(prompt, parse_output(by_prompt[prompt][0]["chosen"]).answer_value, group)
        for prompt, group in sorted(held.items(), key=lambda kv: (kv[1], kv[0]))
    ]
    return Split([s for s in samples if s["prompt"] not in held], checks)


@torch.no_grad()
def run_checks(
    lm: nn.Module, tokenizer: Any, checks: list[Check], *, max_new_tokens: int, batch_size: int = 64
) -> list[bool]:
    """Whether the model's greedy answer to each check is right (see the module's doc)."""
    was_training = lm.training
    lm.eval()
    passed = []
    params = GenerationParams(max_new_tokens=max_new_tokens)
    try:
        for i in range(0, len(checks), batch_size):
            chunk = checks[i : i + batch_size]
            for check, gen in zip(chunk, generate_batch(lm, tokenizer, [c.prompt for c in chunk], params)):
                parsed = parse_output(gen.text)
                passed.append(
                    check.answer is not None
                    and parsed.answer_value == check.answer
                    and correction_distances(parsed)[1] == 0
                )
    finally:
        lm.train(was_training)
    return passed


def measure(checks: list[Check], passed: list[bool], *, epoch: int) -> dict[str, Any]:
    """One epoch's validation entry: accuracy per group, of the corrections and of replay."""

    def block(flags: list[bool]) -> dict[str, Any]:
        return {"n": len(flags), "accuracy": round(sum(flags) / len(flags), 4) if flags else None}

    groups: dict[str, list[bool]] = {}
    for c, ok in zip(checks, passed):
        groups.setdefault(c.group, []).append(ok)
    corrections = [ok for c, ok in zip(checks, passed) if c.group != REPLAY]
    return {
        "epoch": epoch,
        "corrections": block(corrections),
        "replay": block(groups.get(REPLAY, [])),
        "groups": {g: block(v) for g, v in sorted(groups.items()) if g != REPLAY},
    }


def verdict(entry: dict[str, Any], baseline: dict[str, Any], config: TrainConfig) -> dict[str, Any]:
    """``fixed``, ``replay_ok`` and the groups still short of the threshold, for one epoch."""
    unfixed = [
        g
        for g, b in entry["groups"].items()
        if b["n"] >= config.validation_group_min and b["accuracy"] < config.fixed_threshold
    ]
    overall = entry["corrections"]["accuracy"]
    replay, before = entry["replay"]["accuracy"], baseline["replay"]["accuracy"]
    replay_ok = replay is None or before is None or replay >= before - config.replay_tolerance - 1e-9
    return {
        "fixed": not unfixed and overall is not None and overall >= config.fixed_threshold,
        "replay_ok": replay_ok,
        "unfixed": unfixed,
    }


def rank(entry: dict[str, Any]) -> tuple[bool, float, float]:
    """The signal the best epoch (and the best attempt) is chosen by: higher is better."""
    return (
        bool(entry.get("replay_ok", True)),
        entry["corrections"]["accuracy"] or 0.0,
        entry["replay"]["accuracy"] or 0.0,
    )


def best_of(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best trained epoch (epoch 0, the untrained model, never wins)."""
    trained = [e for e in entries if e["epoch"] > 0]
    return max(trained, key=lambda e: (rank(e), -e["epoch"])) if trained else None


def stop_reason(entries: list[dict[str, Any]], config: TrainConfig) -> str | None:
    """Why the attempt stops after its last entry's epoch, or None to go on."""
    last = entries[-1]
    best = best_of(entries)
    epoch = last["epoch"]
    if epoch >= config.min_epochs and last["fixed"] and last["replay_ok"]:
        return "fixed"
    if epoch >= config.max_epochs:
        return "max_epochs"
    if best is not None and epoch >= config.min_epochs and epoch - best["epoch"] >= config.patience:
        return "plateau"
    return None


def history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The validation entries a trainer state holds (restored with a checkpoint)."""
    return [h[VALIDATION_KEY] for h in log_history if VALIDATION_KEY in h]


class ValidationCallback(TrainerCallback):
    """Measures the checks before training and after each epoch, records each entry in the
    trainer state's log history (so a checkpoint carries it), saves a new best epoch's
    trainable weights through ``save_best`` and stops the attempt (see `stop_reason`)."""

    def __init__(
        self,
        *,
        lm: nn.Module,
        tokenizer: Any,
        checks: list[Check],
        config: TrainConfig,
        save_best: Any,
        on_entry: Any = None,
    ):
        self.lm = lm
        self.tokenizer = tokenizer
        self.checks = checks
        self.config = config
        self.save_best = save_best
        self.on_entry = on_entry

    def _measure(self, epoch: int) -> dict[str, Any]:
        passed = run_checks(
            self.lm, self.tokenizer, self.checks, max_new_tokens=self.config.validation_max_new_tokens
        )
        return measure(self.checks, passed, epoch=epoch)

    def _record(self, state: TrainerState, entry: dict[str, Any]) -> None:
        record: dict[str, Any] = {VALIDATION_KEY: entry, "step": state.global_step}
        state.log_history.append(record)
        if self.on_entry:
            self.on_entry(entry)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not history(state.log_history):  # a fresh attempt: the model before any step
            entry = self._measure(0)
            entry.update(fixed=False, replay_ok=True, unfixed=sorted(entry["groups"]))
            self._record(state, entry)

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        entries = history(state.log_history)
        entry = self._measure(round(float(state.epoch or 0)))
        entry.update(verdict(entry, entries[0], self.config))
        entries.append(entry)
        best = best_of(entries)
        if best is entry:
            self.save_best(entry["epoch"])
        entry["best_epoch"] = best["epoch"] if best else None
        if reason := stop_reason(entries, self.config):
            entry["stop"] = reason
            control.should_training_stop = True
        self._record(state, entry)
