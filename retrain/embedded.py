"""The embedded default evaluation set: the synthetic workload's held-out problems.

The one place retrain reads the workload. The demo and the tests measure with it; the
workload's stable hash split also keeps its held-out problems out of training.
"""

from __future__ import annotations

from django.conf import settings

from inference.engine import workload


def eval_items(n: int | None = None) -> list[dict]:
    """The held-out set: workload problems whose hash puts them in the eval split."""
    n = n or settings.COGLOOP_EVAL_SIZE
    return [
        {"prompt": p.prompt, "answer": p.answer, "slice": p.slice, "kind": p.kind}
        for p in workload.problems(n, seed=settings.COGLOOP_EVAL_SEED, split="eval")
    ]


def split_of(prompt: str) -> str:
    """ "train" or "eval" for a prompt, stable across runs (the workload's hash split)."""
    return workload.split_of(prompt)
