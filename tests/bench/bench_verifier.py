"""Does the head's confidence tell right answers from wrong ones once it is trained on verdicts?

For each seed: a fresh head is fitted (retrain.trainer.verifier.fit_verifier) on the model's own
answers to training-split workload prompts, then the model answers held-out prompts greedily, as
the gate measures it, and the head's confidence, the token-based confidence and the cognition
score are each judged by AUROC (right vs wrong) and ECE, side by side, in one run.

    python tests/bench/bench_verifier.py                      # the shipped cogloop-tiny, 3 seeds
    python tests/bench/bench_verifier.py --model DIR --train 300 --eval 300 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from inference.engine import loading, workload
from inference.engine.generation import GenerationParams, generate_batch
from inference.engine.meta_serving import annotate_batch
from inference.engine.metahead import MetaHead, MetaHeadConfig
from inference.engine.parser import parse_output
from inference.engine.scoring import score_output
from retrain.trainer.verifier import VerifierConfig, auroc, ece, fit_verifier, is_right

TINY = Path(__file__).resolve().parents[2] / "inference" / "engine" / "cogloop_tiny"


def items(n: int, split: str, seed: int) -> list[dict]:
    return [{"prompt": p.prompt, "answer": p.answer} for p in workload.problems(n, seed=seed, split=split)]


def fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=str(TINY))
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--eval", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, tokenizer = loading.load_model(args.model)
    held = items(args.eval, "eval", seed=99)
    generated = []
    for start in range(0, len(held), 64):
        chunk = held[start : start + 64]
        generated += generate_batch(
            model, tokenizer, [c["prompt"] for c in chunk], GenerationParams(max_new_tokens=96)
        )
    right = [is_right(g.text, item["answer"]) for g, item in zip(generated, held)]
    score = [score_output(parse_output(g.text)).cognition_score for g in generated]
    token = [g.confidence for g in generated]
    print(
        f"model {args.model}: held-out {len(held)} answers, {sum(right)} right ({sum(right) / len(right):.0%})"
    )
    print(
        "\n| signal | seed | AUROC | ECE | fit: answers (right) | held-back AUROC | seconds |\n|---|---|---|---|---|---|---|"
    )
    print(f"| cognition score | - | {fmt(auroc(score, right))} | {fmt(ece(score, right))} | | | |")
    if all(t is not None for t in token):
        print(f"| token confidence | - | {fmt(auroc(token, right))} | {fmt(ece(token, right))} | | | |")
    for seed in args.seeds:
        torch.manual_seed(seed)
        head = MetaHead(MetaHeadConfig.for_hidden(model.config.hidden_size))
        started = time.monotonic()
        fitted = fit_verifier(
            model,
            tokenizer,
            head,
            items(args.train, "train", seed=seed),
            VerifierConfig(seed=seed, steps=args.steps),
        )
        seconds = time.monotonic() - started
        metas = []
        for start in range(0, len(held), 64):
            chunk = held[start : start + 64]
            metas += annotate_batch(
                model,
                tokenizer,
                head,
                [c["prompt"] for c in chunk],
                [g.text for g in generated[start : start + 64]],
            )
        conf = [m["confidence"] for m in metas]
        print(
            f"| head (verifier) | {seed} | {fmt(auroc(conf, right))} | {fmt(ece(conf, right))} | "
            f"{fitted.get('fit_answers')} ({fitted.get('right')}) | {fmt(fitted.get('held_auroc'))} | {seconds:.0f} |"
        )


if __name__ == "__main__":
    main()
