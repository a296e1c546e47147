"""The promotion gate: pure arithmetic over per-item results, no database, no settings.

``runs.training_run_execute`` feeds it the serving model's and the candidate's rows on the
held-out items and the thresholds from settings; the tests call it directly.
"""

from __future__ import annotations

import random
from fractions import Fraction


def paired_bootstrap_gain(
    serving_rows: list[dict], candidate_rows: list[dict], *, samples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean gain, 2.5th, 97.5th percentile) of candidate minus serving accuracy, resampling
    the same held-out items for both (a paired bootstrap)."""
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
    "unjudged_slices"}.

    Accuracies are compared exactly, as fractions of items (right / n), against the thresholds
    read as decimals: a gain of 0.95 - 0.93 meets a required 0.02 (in floats it falls short).
    """
    gain = _exact(candidate["overall"]) - _exact(serving["overall"])
    exact_changes = {
        name: _exact(block) - _exact(serving["slices"][name])
        for name, block in candidate["slices"].items()
        if name in serving["slices"] and block["accuracy"] is not None
    }
    changes = {name: round(float(change), 4) for name, change in exact_changes.items()}
    judged = {name for name in changes if serving["slices"][name]["n"] >= min_slice_n}
    # A slice loses when its drop exceeds the tolerance and is not noise: the upper end of its
    # paired-bootstrap interval lies below zero (when intervals are given).
    losses = {
        name: round(float(-change), 4)
        for name, change in exact_changes.items()
        if name in judged and -change > _decimal(tolerance) and (slice_ci is None or slice_ci[name][1] < 0)
    }
    extra = {"slice_changes": changes, "unjudged_slices": sorted(set(changes) - judged)}
    if slice_ci is not None:
        extra["slice_ci95"] = {
            name: [round(low, 4), round(high, 4)] for name, (low, high) in slice_ci.items()
        }
    decision = _gate_reason(gain=gain, losses=losses, min_gain=min_gain, tolerance=tolerance, ci=ci)
    return {**decision, **extra}


def _exact(block: dict) -> Fraction:
    """A block's accuracy as right / n. Blocks carry accuracy rounded to 4 places and, from an
    evaluation, n: the count of right items is recovered exactly while n < 5000. Without n the
    rounded decimal is taken as written."""
    accuracy, n = block["accuracy"], block.get("n")
    if accuracy is None:
        return Fraction(0)
    return Fraction(round(accuracy * n), n) if n else Fraction(str(accuracy))


def _decimal(value: float) -> Fraction:
    """A threshold as the decimal it was written as (0.02 is 2/100, not 0.0200000000000000004)."""
    return Fraction(str(value))


def _gate_reason(*, gain: Fraction, losses, min_gain, tolerance, ci) -> dict:
    interval = f" (95% CI {ci[0]:+.3f} to {ci[1]:+.3f})" if ci else ""
    if losses:
        return {
            "promote": False,
            "reason": f"slices lost more than {tolerance:.0%}: {losses}",
            "gain": round(float(gain), 4),
        }
    if gain < _decimal(min_gain):
        return {
            "promote": False,
            "reason": f"accuracy gain {float(gain):+.3f}{interval} is below the required {min_gain:+.3f}",
            "gain": round(float(gain), 4),
        }
    if ci and ci[0] <= 0:
        return {
            "promote": False,
            "reason": f"accuracy gain {float(gain):+.3f} is not significant{interval}",
            "gain": round(float(gain), 4),
        }
    return {
        "promote": True,
        "reason": f"accuracy gain {float(gain):+.3f}{interval}, no slice lost more than {tolerance:.0%}",
        "gain": round(float(gain), 4),
    }


def gate_from_rows(
    serving_rows: list[dict],
    candidate_rows: list[dict],
    *,
    serving: dict,
    candidate: dict,
    slices: dict[str, list[int]],
    min_gain: float,
    tolerance: float,
    min_slice_n: int,
) -> dict:
    """The gate with the overall and per-slice paired bootstraps (``slices``: name -> row indices)."""
    gain, low, high = paired_bootstrap_gain(serving_rows, candidate_rows)
    slice_ci = {}
    for name, idx in slices.items():
        _, s_low, s_high = paired_bootstrap_gain(
            [serving_rows[i] for i in idx], [candidate_rows[i] for i in idx]
        )
        slice_ci[name] = (s_low, s_high)
    decision = gate_decide(
        serving=serving,
        candidate=candidate,
        ci=(low, high),
        slice_ci=slice_ci,
        min_gain=min_gain,
        tolerance=tolerance,
        min_slice_n=min_slice_n,
    )
    return {**decision, "ci95": [round(low, 4), round(high, 4)]}
