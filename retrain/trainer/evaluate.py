"""Measure a model directory on held-out problems: accuracy, cognition score and the seed's
metacognition metrics, overall and per slice.

Per output (one row per held-out item):
    correct            the answer's number equals the problem's answer
    score              the cognition score (scoring.py)
    strategies         distinct named strategies in the output's steps ("other" not counted)
    correction_steps   for each wrong claim the model later corrected: steps from the error to
                       the correcting step (a self-correction cue, or a right claim on the same
                       expression); wrong claims never corrected are counted apart
    confidence         the metacognition head's answer confidence, when the head is trained

Summary metrics (each block; None where nothing was measured):
    accuracy, error_rate, mean_score
    strategy_diversity     mean distinct strategies per task (seed target: >= 3)
    correction_steps       mean steps from a detected error to its correction (seed: <= 2)
    errors_corrected       share of wrong claims the model corrected at all
    ece                    expected calibration error of the head's confidence (10 equal-width
                           bins, |accuracy - mean confidence| weighted by bin size)
Transparency approval is a reviewers' verdict, not something a held-out set can measure; the
service adds it from annotations (retrain.services.version_metrics).

Slices: the workload's (``blind_spot`` / ``rest``), the task's strategy (``strategy:deduction``
for chains, ``strategy:induction`` for patterns, ``strategy:analogy`` for analogies), and, when
``error_classes`` is given, ``error:<type>`` for the items on which a reference model (the serving
one) made that kind of error — so the gate sees whether the candidate fixed each error class.
"""

from __future__ import annotations

from pathlib import Path

from inference.engine import loading
from inference.engine.agreement import normalise_answer
from inference.engine.generation import GenerationParams
from inference.engine.meta_serving import generate_and_read
from inference.engine.metahead import load_head
from inference.engine.parser import parse_output
from inference.engine.scoring import extract_claims, score_output

TASK_STRATEGY = {"chain": "deduction", "pattern": "induction", "analogy": "analogy"}
ECE_BINS = 10


def correction_distances(parsed) -> tuple[list[int], int]:
    """(steps from each corrected wrong claim to its correction, wrong claims never corrected)."""
    claims = [c for s in parsed.steps for c in extract_claims(s.index, s.text)]
    correcting = sorted(s.index for s in parsed.steps if s.self_correction)
    distances, uncorrected = [], 0
    for w in (c for c in claims if not c.correct):
        later = [i for i in correcting if i > w.step]
        later += [c.step for c in claims if c.correct and c.left == w.left and c.step > w.step]
        if later:
            distances.append(min(later) - w.step)
        else:
            uncorrected += 1
    return distances, uncorrected


def answers_match(answer: str | None, reference: object) -> bool:
    """The answer states the reference's value: numbers, units and currency normalised
    (``18``, ``$18.00`` and ``18 dollars`` match 18; ``1,800`` matches 1800)."""
    got = normalise_answer(answer)
    return got is not None and got == normalise_answer(str(reference))


def error_class(row: dict) -> str | None:
    """The kind of error an output made, as the checker sees it (None when it was right)."""
    if row["correct"]:
        return None
    if row["wrong_claims"]:
        return "arithmetic"
    if not row["answer_agrees"]:
        return "inconsistent_answer"
    return "wrong_operation"  # every claim checks out, the answer agrees, and it is still wrong


def evaluate_items(
    model, tokenizer, items: list[dict], *, batch_size: int = 64, max_new_tokens: int = 96, head=None
) -> list[dict]:
    """``items``: [{"prompt", "answer", "slice", "kind"?}]. Returns one row per item."""
    rows = []
    params = GenerationParams(max_new_tokens=max_new_tokens)
    use_head = head is not None and head.config.trained
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        prompts = [c["prompt"] for c in chunk]
        generated, metas = generate_and_read(model, tokenizer, head if use_head else None, prompts, params)
        for item, gen, meta in zip(chunk, generated, metas):
            parsed = parse_output(gen.text)
            parts = score_output(parsed)
            distances, uncorrected = correction_distances(parsed)
            correct = answers_match(parsed.answer, item["answer"])
            rows.append(
                {
                    "slice": item["slice"],
                    "kind": item.get("kind"),
                    "correct": correct,
                    "score": parts.cognition_score,
                    "wrong_claims": parts.wrong_claims,
                    "answer_agrees": bool(parts.answer_agreement),
                    "strategies": len({s.strategy for s in parsed.steps if s.strategy != "other"}),
                    "correction_steps": distances,
                    "uncorrected": uncorrected,
                    "confidence": meta["confidence"] if meta else None,
                }
            )
    return rows


def expected_calibration_error(pairs: list[tuple[float, bool]], bins: int = ECE_BINS) -> float | None:
    """ECE of (confidence, correct) pairs over equal-width bins; None without pairs."""
    if not pairs:
        return None
    total, ece = len(pairs), 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        in_bin = [(c, ok) for c, ok in pairs if low <= c < high or (b == bins - 1 and c == 1.0)]
        if in_bin:
            gap = sum(ok for _, ok in in_bin) / len(in_bin) - sum(c for c, _ in in_bin) / len(in_bin)
            ece += len(in_bin) / total * abs(gap)
    return round(ece, 4)


def _block(rows: list[dict]) -> dict:
    n = len(rows)
    if not n:
        return {"n": 0, "accuracy": None, "error_rate": None, "mean_score": None}
    right = sum(r["correct"] for r in rows)
    distances = [d for r in rows for d in r.get("correction_steps", [])]
    wrong_claims = len(distances) + sum(r.get("uncorrected", 0) for r in rows)
    return {
        "n": n,
        "accuracy": round(right / n, 4),
        "error_rate": round(1 - right / n, 4),
        "mean_score": round(sum(r["score"] for r in rows) / n, 4),
        "strategy_diversity": round(sum(r.get("strategies", 0) for r in rows) / n, 3),
        "correction_steps": round(sum(distances) / len(distances), 3) if distances else None,
        "errors_corrected": round(len(distances) / wrong_claims, 4) if wrong_claims else None,
        "ece": expected_calibration_error(
            [(r["confidence"], r["correct"]) for r in rows if r.get("confidence") is not None]
        ),
    }


def summarize(rows: list[dict], *, error_classes: dict[int, str] | None = None) -> dict:
    """Overall and per-slice metrics. ``error_classes`` maps row index -> error class of a
    reference model on that item (see `error_class`), giving ``error:<class>`` slices."""
    members = slice_members(rows, error_classes=error_classes)
    overall = _block(rows)
    return {
        **overall,
        "overall": overall,
        "slices": {name: _block([rows[i] for i in idx]) for name, idx in sorted(members.items())},
    }


def slice_members(rows: list[dict], *, error_classes: dict[int, str] | None = None) -> dict[str, list[int]]:
    """Slice name -> indices of the rows in it (a row is in several slices)."""
    members: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        names = [r["slice"]]
        if r.get("kind") in TASK_STRATEGY:
            names.append(f"strategy:{TASK_STRATEGY[r['kind']]}")
        if error_classes and error_classes.get(i):
            names.append(f"error:{error_classes[i]}")
        for name in names:
            members.setdefault(name, []).append(i)
    return members


def evaluate_dir(model_dir: Path, items: list[dict], *, expected_manifest: dict | None = None) -> list[dict]:
    """Rows for ``items`` from the model (and its head, when it has one) in ``model_dir``."""
    model, tokenizer = loading.load_model(model_dir, expected_manifest=expected_manifest)
    return evaluate_items(model, tokenizer, items, head=load_head(model_dir))
