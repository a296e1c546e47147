"""Validation's rules without training: which prompts are held out, when an attempt stops,
which epoch it keeps."""

from inference.engine import workload
from retrain.trainer import validation
from retrain.trainer.config import TrainConfig


def _corrections(n, seed=3):
    rows = []
    for p in workload.problems(n * 4, seed=seed, split="train"):
        if p.slice == workload.BLIND_SPOT and len(rows) < n:
            rows.append(
                {
                    "prompt": p.prompt,
                    "chosen": p.response_text(),
                    "rejected": p.response_text().replace(" - ", " + "),
                }
            )
    return rows


def _replay(n):
    return [
        {
            "prompt": f"What comes next: {i}, {i + 1}?",
            "chosen": f"Step 1 [deduction]: {i} + 1 = {i + 1}\n</think>\n\nThe answer is {i + 1}.",
        }
        for i in range(n)
    ]


def test_a_correction_is_grouped_by_its_error_and_the_strategy_of_the_step_it_fixed():
    row = {
        "prompt": "What comes next: 7, 16?",
        "chosen": "Step 1 [induction]: 16 - 7 = 9\nStep 2 [deduction]: 16 + 9 = 25\n</think>\n\nThe answer is 25.",
        "rejected": "Step 1 [induction]: 16 - 7 = 8\nStep 2 [deduction]: 16 + 8 = 24\n</think>\n\nThe answer is 24.",
    }
    assert validation.correction_group(row) == "arithmetic/induction"
    assert validation.correction_group({**row, "rejected": row["chosen"]}) is None, "nothing to fix"
    assert validation.correction_group({"prompt": "x", "chosen": row["chosen"]}) is None


def test_split_holds_out_a_seeded_share_of_each_group_by_prompt_and_of_replay():
    samples = _corrections(60) + _replay(100)
    config = TrainConfig(validation_share=0.15, validation_min=8, replay_validation_share=0.15)
    split = validation.split_samples(samples, config)
    assert split.counts() == {"arithmetic/deduction": 9, "replay": 15}
    held = {c.prompt for c in split.checks}
    assert not held & {s["prompt"] for s in split.train} and len(split.train) + len(held) == len(samples)
    assert split.checks == validation.split_samples(samples, config).checks, "reproducible"
    assert split.checks != validation.split_samples(samples, TrainConfig(seed=8)).checks


def test_too_few_corrections_train_without_validation():
    split = validation.split_samples(_corrections(15) + _replay(40), TrainConfig(validation_min=8))
    assert split.checks == [] and "15 corrections" in split.skipped
    assert validation.split_samples(_corrections(60), TrainConfig(validation_share=0)).skipped


def _entry(epoch, corrections, replay, groups=None):
    return {
        "epoch": epoch,
        "corrections": {"n": 20, "accuracy": corrections},
        "replay": {"n": 20, "accuracy": replay},
        "groups": groups or {"arithmetic/deduction": {"n": 20, "accuracy": corrections}},
    }


def _judged(entries, config):
    for e in entries[1:]:
        e.update(validation.verdict(e, entries[0], config))
    return entries


def test_an_attempt_stops_when_the_groups_are_fixed_and_replay_holds():
    config = TrainConfig(fixed_threshold=0.95, replay_tolerance=0.05, min_epochs=2)
    entries = _judged([_entry(0, 0.0, 0.9), _entry(1, 0.96, 0.9)], config)
    assert validation.stop_reason(entries, config) is None, "not before min_epochs"
    entries = _judged(entries + [_entry(2, 0.96, 0.86)], config)
    assert validation.stop_reason(entries, config) == "fixed"
    damaged = _judged([_entry(0, 0.0, 0.9), _entry(1, 0.5, 0.9), _entry(2, 1.0, 0.8)], config)
    assert damaged[-1]["fixed"] and not damaged[-1]["replay_ok"]
    assert validation.stop_reason(damaged, config) is None, "fixed by damaging replay is not done"


def test_a_small_group_below_the_threshold_is_not_judged_alone():
    config = TrainConfig(validation_group_min=4)
    groups = {"a": {"n": 30, "accuracy": 1.0}, "b": {"n": 2, "accuracy": 0.5}}
    v = validation.verdict(_entry(1, 0.97, 0.9, groups), _entry(0, 0.0, 0.9), config)
    assert v["fixed"] and v["unfixed"] == []
    groups["b"]["n"] = 4
    assert validation.verdict(_entry(1, 0.97, 0.9, groups), _entry(0, 0.0, 0.9), config)["unfixed"] == ["b"]


def test_plateau_and_max_epochs_stop_and_the_best_epoch_keeps_replay():
    config = TrainConfig(patience=2, min_epochs=1, max_epochs=6)
    entries = _judged(
        [
            _entry(0, 0.0, 0.9),
            _entry(1, 0.5, 0.9),
            _entry(2, 0.9, 0.7),
            _entry(3, 0.6, 0.9),
            _entry(4, 0.6, 0.9),
        ],
        config,
    )
    assert validation.best_of(entries)["epoch"] == 3, "epoch 2 fixed more but lost replay answers"
    assert validation.stop_reason(entries[:4], config) is None
    entries = _judged(entries + [_entry(5, 0.55, 0.9)], config)
    assert validation.stop_reason(entries, config) == "plateau"
    rising = _judged([_entry(0, 0.0, 0.9)] + [_entry(e, e / 10, 0.9) for e in range(1, 7)], config)
    assert validation.stop_reason(rising, config) == "max_epochs"


def test_retries_go_on_only_while_they_beat_the_attempts_before_them():
    from retrain.trainer.train import _worth_another

    def attempt(corrections, replay_ok=True, converged=False):
        best = {"corrections": {"accuracy": corrections}, "replay": {"accuracy": 1.0}, "replay_ok": replay_ok}
        return {"best": best, "converged": converged}

    assert _worth_another([])
    assert _worth_another([attempt(0.7)]), "one retry is always tried"
    assert not _worth_another([attempt(0.7, converged=True)])
    assert _worth_another([attempt(0.9, replay_ok=False), attempt(0.7)]), "keeping replay beats fixing more"
    assert not _worth_another([attempt(0.73), attempt(0.73)]), "no better: the data's limit, not the draw's"


def test_a_retry_drops_the_curriculum_after_under_fitting_and_halves_the_rate_after_damage():
    from retrain.trainer.train import _attempt_settings

    config = TrainConfig(learning_rate=1e-3, seed=7)

    def attempt(lr, curriculum, *, fixed, replay_ok):
        return {
            "learning_rate": lr,
            "curriculum": curriculum,
            "best": {"fixed": fixed, "replay_ok": replay_ok},
        }

    assert _attempt_settings(config, []) == (7, 1e-3, True)
    under_fitted = attempt(1e-3, True, fixed=False, replay_ok=True)
    assert _attempt_settings(config, [under_fitted]) == (8, 1e-3, False)
    damaged = attempt(1e-3, True, fixed=True, replay_ok=False)
    assert _attempt_settings(config, [damaged]) == (8, 5e-4, True)
    # Both in turn: the rate halves and the curriculum stays off once dropped.
    assert _attempt_settings(config, [under_fitted, attempt(1e-3, False, fixed=False, replay_ok=False)]) == (
        9,
        5e-4,
        False,
    )
    off = TrainConfig(learning_rate=1e-3, seed=7, retry_without_curriculum=False)
    assert _attempt_settings(off, [under_fitted]) == (8, 1e-3, True)
