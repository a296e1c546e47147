"""Every write of the retrain app, by concern: datasets (samples and monthly versions) and runs
(the quarterly run, its lease, its stages and the gate's verdict). The gate's arithmetic is
``retrain.gate``; the embedded evaluation set ``retrain.embedded``."""

from retrain.embedded import eval_items
from retrain.periods import quarter_of
from retrain.services.datasets import (
    current_period,
    dataset_version_build,
    dataset_version_build_monthly,
    held_out_fingerprints,
    training_samples_collect,
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

__all__ = [
    "LEASE_STALE_AFTER",
    "RUN_MAX_ATTEMPTS",
    "TRAINING_RUN_EXECUTE_TASK",
    "current_period",
    "dataset_version_build",
    "dataset_version_build_monthly",
    "eval_items",
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
