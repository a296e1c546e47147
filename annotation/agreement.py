"""Inter-annotator agreement: Cohen's kappa and confidence-interval overlap. Plain Python."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


def cohen_kappa(pairs: Iterable[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters over paired labels; None without pairs.

    kappa = (p_o - p_e) / (1 - p_e). When chance agreement is already certain (both raters
    always used one and the same label) kappa is undefined; we report 1.0 for that perfect
    agreement, and 0.0 when p_e is 1 without agreement (impossible, kept for safety).
    """
    pairs = list(pairs)
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    first = Counter(a for a, _ in pairs)
    second = Counter(b for _, b in pairs)
    expected = sum(first[label] * second[label] for label in first) / (n * n)
    if expected == 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1 - expected)


def interval_overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Jaccard overlap of two intervals: |a ∩ b| / |a ∪ b|, in [0, 1]. Two equal points give 1."""
    low, high = max(a[0], b[0]), min(a[1], b[1])
    union = max(a[1], b[1]) - min(a[0], b[0])
    if union == 0:
        return 1.0  # both are the same single point
    return max(0.0, high - low) / union
