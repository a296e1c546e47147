"""Measure a model directory on held-out problems: accuracy and cognition score per slice."""

from __future__ import annotations

from pathlib import Path

from inference.engine import loading
from inference.engine.generation import GenerationParams, generate_batch
from inference.engine.parser import parse_output
from inference.engine.scoring import score_output


def evaluate_items(model, tokenizer, items: list[dict], *, batch_size: int = 64, max_new_tokens: int = 96) -> list[dict]:
    """``items``: [{"prompt", "answer", "slice"}]. Returns one row per item: correct, score."""
    rows = []
    params = GenerationParams(max_new_tokens=max_new_tokens)
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        for item, gen in zip(chunk, generate_batch(model, tokenizer, [c["prompt"] for c in chunk], params)):
            parsed = parse_output(gen.text)
            parts = score_output(parsed)
            correct = parsed.answer_value is not None and float(parsed.answer_value) == float(item["answer"])
            rows.append({"slice": item["slice"], "correct": correct, "score": parts.cognition_score})
    return rows


def summarize(rows: list[dict]) -> dict:
    def block(rs):
        n = len(rs)
        return {
            "n": n,
            "accuracy": round(sum(r["correct"] for r in rs) / n, 4) if n else None,
            "error_rate": round(1 - sum(r["correct"] for r in rs) / n, 4) if n else None,
            "mean_score": round(sum(r["score"] for r in rs) / n, 4) if n else None,
        }

    slices = sorted({r["slice"] for r in rows})
    return {"overall": block(rows), "slices": {s: block([r for r in rows if r["slice"] == s]) for s in slices}}


def evaluate_dir(model_dir: Path, items: list[dict], *, expected_manifest: dict | None = None) -> tuple[dict, list[dict]]:
    model, tokenizer = loading.load_model(model_dir, expected_manifest=expected_manifest)
    rows = evaluate_items(model, tokenizer, items)
    return summarize(rows), rows
