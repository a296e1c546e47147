"""The embedded default evaluation set: the synthetic workload's held-out problems.

The one place retrain reads the workload. The demo and the tests measure with it; the
workload's stable hash split also keeps its held-out problems out of training. As data it is
the global eval set ``workload-heldout`` (register_embedded_eval_set), one set among those a
user imports.
"""

from __future__ import annotations

from django.conf import settings

from inference.engine import workload
from retrain.models import EvalSetVersion
from retrain.services import evalsets

EMBEDDED_EVAL_SET = "workload-heldout"


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


def register_embedded_eval_set() -> EvalSetVersion:
    """The global set ``workload-heldout`` (source "embedded"), made from eval_items() if absent.

    Its items' tags are (slice, kind), so the gate judges the workload's slices as before.
    """
    items = [
        {"prompt": i["prompt"], "answer": i["answer"], "tags": [t for t in (i["slice"], i["kind"]) if t]}
        for i in eval_items()
    ]
    return evalsets.eval_set_ensure(
        name=EMBEDDED_EVAL_SET, items=items, source=EvalSetVersion.Source.EMBEDDED
    )
