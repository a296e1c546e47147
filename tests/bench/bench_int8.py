"""int8 dynamic quantization of the linear layers (torch.ao) against float32, on cogloop-tiny.

    python tests/bench/bench_int8.py

Quality: accuracy and mean cognition score on the 300 held-out problems. Speed: one batch of
32 and single requests (greedy, 96 new tokens). Both models measured in this one run.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from inference.engine import loading, workload  # noqa: E402
from inference.engine.generation import GenerationParams, generate_batch  # noqa: E402
from retrain.trainer.evaluate import evaluate_items, summarize  # noqa: E402


def timings(model, tokenizer, prompts):
    generate_batch(model, tokenizer, prompts[:2], GenerationParams())
    t = time.perf_counter()
    generate_batch(model, tokenizer, prompts[:32], GenerationParams())
    batch = time.perf_counter() - t
    t = time.perf_counter()
    for p in prompts[:8]:
        generate_batch(model, tokenizer, [p], GenerationParams())
    return batch, (time.perf_counter() - t) / 8


def main():
    torch.set_num_threads(2)
    model, tokenizer = loading.load_model(ROOT / "inference" / "engine" / "cogloop_tiny")
    items = [
        {"prompt": p.prompt, "answer": p.answer, "slice": p.slice}
        for p in workload.problems(300, seed=20261, split="eval")
    ]
    prompts = [i["prompt"] for i in items]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        int8 = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    print("| weights | accuracy | mean cognition score | batch of 32 (s) | single request (ms) |")
    print("|---|---|---|---|---|")
    for name, m in (("float32", model), ("int8 dynamic (linear layers)", int8)):
        overall = summarize(evaluate_items(m, tokenizer, items))["overall"]
        batch, single = timings(m, tokenizer, prompts)
        print(
            f"| {name} | {overall['accuracy']:.3f} | {overall['mean_score']:.3f} | {batch:.2f} | {1000 * single:.0f} |"
        )


if __name__ == "__main__":
    main()
