"""Every write of the retrain app, by concern: datasets (samples and monthly versions), eval sets
(imported, held out from review, embedded) and runs (the quarterly run, its lease, its stages
and the gate's verdict). The gate's arithmetic is ``retrain.gate``; the embedded evaluation set
``retrain.embedded``."""

from retrain import embedded
from retrain.periods import quarter_of
from retrain.services.datasets import (
    current_period,
    dataset_version_build,
    dataset_version_build_monthly,
    held_out_fingerprints,
    training_samples_collect,
)
from retrain.services.evalsets import (
    GOLDEN,
    eval_set_ensure,
    eval_set_fingerprints,
    eval_set_grow_from_review,
    eval_set_import,
    eval_set_items,
    eval_set_latest,
)
from retrain.services.runs import (
    LEASE_STALE_AFTER,
    RUN_MAX_ATTEMPTS,
    TRAINING_RUN_EXECUTE_TASK,
    gate_from_rows,
    training_run_acquire,
    training_run_execute,
    training_run_reconcile,
    training_run_retry,
    training_run_start,
    training_run_start_quarterly,
)


def eval_items(n: int | None = None) -> list[dict]:
    """The embedded held-out set (retrain.embedded.eval_items). Read through the module when
    called: retrain.embedded registers its eval set through these services, so importing the
    name here would make the two modules' import order matter."""
    return embedded.eval_items(n)


__all__ = [
    "GOLDEN",
    "LEASE_STALE_AFTER",
    "RUN_MAX_ATTEMPTS",
    "TRAINING_RUN_EXECUTE_TASK",
    "current_period",
    "dataset_version_build",
    "dataset_version_build_monthly",
    "eval_items",
    "eval_set_ensure",
    "eval_set_fingerprints",
    "eval_set_grow_from_review",
    "eval_set_import",
    "eval_set_items",
    "eval_set_latest",
    "gate_from_rows",
    "held_out_fingerprints",
    "quarter_of",
    "training_run_retry",
    "training_run_acquire",
    "training_run_execute",
    "training_run_reconcile",
    "training_run_start",
    "training_run_start_quarterly",
    "training_samples_collect",
]
