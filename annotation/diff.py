"""Original vs corrected reasoning, step by step, for the pages that show a diff. Plain Python."""

from __future__ import annotations

from difflib import SequenceMatcher
from itertools import zip_longest


def step_diff(original: list[dict], corrected: list[dict]) -> list[dict]:
    """Rows of {"op", "before", "after"} where op is same / changed / removed / added; before and
    after are {"text", "strategy"} or None. A step whose text stayed but whose strategy label
    changed is "changed"."""
    a = [s["text"].strip() for s in original]
    b = [s["text"].strip() for s in corrected]
    rows: list[dict] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            for before, after in zip(original[i1:i2], corrected[j1:j2]):
                same = (before.get("strategy") or "") == after.get("strategy")
                rows.append({"op": "same" if same else "changed", "before": before, "after": after})
            continue
        for before, after in zip_longest(original[i1:i2], corrected[j1:j2]):
            op = "changed" if before and after else ("removed" if before else "added")
            rows.append({"op": op, "before": before, "after": after})
    return rows
