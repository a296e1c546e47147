"""Training recipes side by side: tokens/s, peak memory, and what the gate makes of each.

    python tests/bench/bench_training.py                 # cogloop-tiny, every recipe + baseline
    python tests/bench/bench_training.py --real-config   # random weights in DeepSeek-R1-Distill-Qwen-1.5B's
                                                         # shape (speed and memory only; GPU advised)

The data mirror the demo's: blind-spot problems with the base model's own (wrong) answer as
``rejected`` and the reference solution as ``chosen`` (the simulated reviewer's correction),
plus replay rows of the base model's answers that the checker scores >= 0.75 on other
problems, one per correction.

Every variant trains in a child process of its own (peak resident memory is the child's
``ru_maxrss``; on a GPU, ``torch.cuda.max_memory_allocated``) on the same rows:

    peft+Trainer   the baseline: plain ``transformers.Trainer``, LoRA on every linear layer,
                   token cross-entropy only
    layered        the seed's recipe (LoRA q/k of the first 3 layers, lm_head and head trainable)
    lora-all       Cogloop's default
    full           every weight

Tokens/s counts the tokens of the training sequences (prompt + response) per second of
training; the composite loss also runs the rejected responses through the model, which the
"forwarded tokens/s" column includes. On the tiny model each recipe's merged result is then
measured on the held-out problems against the base model and put through the gate.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cogloop.settings")
from tests.bench.shapes import R1_DISTILL_1_5B, shaped_model_dir  # noqa: E402

TINY = ROOT / "inference" / "engine" / "cogloop_tiny"
VARIANTS = ("peft+Trainer", "layered", "lora-all", "full")


def make_rows(n_corrections: int, seed: int) -> list[dict]:
    from inference.engine import loading, workload
    from inference.engine.generation import GenerationParams, generate_batch
    from inference.engine.parser import parse_output
    from inference.engine.scoring import score_output

    model, tokenizer = loading.load_model(TINY)
    pool = workload.problems(n_corrections * 6, seed=seed, split="train", planted=False, blind_spot_share=0.5)
    texts = {}
    for i in range(0, len(pool), 64):
        chunk = pool[i : i + 64]
        for p, g in zip(
            chunk, generate_batch(model, tokenizer, [p.prompt for p in chunk], GenerationParams())
        ):
            texts[p.prompt] = g.text
    rows, replay = [], []
    for p in pool:
        text = texts[p.prompt]
        if p.slice == workload.BLIND_SPOT and len(rows) < n_corrections:
            rows.append(
                {
                    "prompt": p.prompt,
                    "chosen": p.response_text(),
                    "rejected": text,
                    "confidence": 0.95,
                    "rejected_confidence": 0.0,
                }
            )
        elif p.slice != workload.BLIND_SPOT and score_output(parse_output(text)).cognition_score >= 0.75:
            replay.append({"prompt": p.prompt, "chosen": text})
    return rows + replay[: len(rows)]


def _real_config_dir(tmp: Path) -> Path:
    """A model directory with random weights in the 1.5B shape and the tiny tokenizer (float32,
    as training loads it; made on the GPU when there is one: 1.8e9 random draws are slow on a CPU)."""
    import torch

    return shaped_model_dir(
        tmp / "r1-1.5b-shape", R1_DISTILL_1_5B, device="cuda" if torch.cuda.is_available() else "cpu"
    )


def run_one(
    variant: str,
    rows_path: Path,
    model_dir: Path,
    out_dir: Path,
    epochs: float,
    max_steps: int,
    options: dict | None = None,
) -> dict:
    import torch

    from retrain.trainer.config import TrainConfig
    from retrain.trainer.train import finetune

    rows = json.loads(rows_path.read_text())
    on_gpu = torch.cuda.is_available()
    started = time.monotonic()
    if variant == "peft+Trainer":
        summary = _baseline(model_dir, rows, out_dir, epochs, max_steps)
    else:
        config = TrainConfig(recipe=variant, epochs=epochs, max_steps=max_steps, **(options or {}))
        summary = finetune(
            base_dir=model_dir,
            samples=rows,
            out_dir=out_dir / "merged",
            work_dir=out_dir / "work",
            config=config,
        )
    peak = (
        torch.cuda.max_memory_allocated()
        if on_gpu
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    main_tokens = summary.get("main_tokens") or summary["tokens"]
    return {
        "variant": variant,
        "seconds": summary["seconds"],
        "steps": summary["steps"],
        "trainable": summary["trainable_parameters"],
        "tokens_per_s": round(main_tokens / summary["seconds"], 1),
        "forwarded_per_s": summary["tokens_per_second"],
        "peak_mb": round(peak / 2**20),
        "gpu": on_gpu,
        "wall": round(time.monotonic() - started, 1),
        "merged": str(out_dir / "merged"),
    }


def _baseline(model_dir: Path, rows: list[dict], out_dir: Path, epochs: float, max_steps: int) -> dict:
    """Plain transformers.Trainer + peft LoRA (all linear layers), cross-entropy only."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    from inference.engine import loading
    from retrain.trainer.config import ALL_LINEAR, TrainConfig
    from retrain.trainer.data import PairCollator, PairDataset

    c = TrainConfig()
    torch.manual_seed(c.seed)
    model, tokenizer = loading.load_model(model_dir)
    model = get_peft_model(
        model,
        LoraConfig(r=c.lora_r, lora_alpha=c.lora_alpha, target_modules=ALL_LINEAR, task_type="CAUSAL_LM"),
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    collate = PairCollator(tokenizer.pad_token_id)
    tokens = [0]

    def collator(batch_rows):
        b = collate(batch_rows)
        tokens[0] += int(b["attention_mask"].sum())
        return {k: b[k] for k in ("input_ids", "attention_mask", "labels")}

    args = TrainingArguments(
        output_dir=str(out_dir / "work"),
        per_device_train_batch_size=c.batch_size,
        num_train_epochs=epochs,
        max_steps=max_steps,
        learning_rate=c.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=2,
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
        seed=c.seed,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=PairDataset(tokenizer, rows, c.max_length),
        data_collator=collator,
    )
    t = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - t
    merged = model.merge_and_unload()
    merged.save_pretrained(out_dir / "merged", safe_serialization=True)
    tokenizer.save_pretrained(out_dir / "merged")
    return {
        "seconds": round(seconds, 1),
        "steps": trainer.state.global_step,
        "tokens": tokens[0],
        "tokens_per_second": round(tokens[0] / seconds, 1),
        "trainable_parameters": trainable,
    }


def gate_table(results: list[dict]) -> list[str]:
    """Each tiny-model result measured on the held-out problems and put through the gate."""
    import django

    django.setup()
    from retrain import services
    from retrain.trainer.evaluate import error_class, evaluate_dir, summarize

    items = services.eval_items()
    base_rows = evaluate_dir(TINY, items)
    classes = {i: c for i, r in enumerate(base_rows) if (c := error_class(r))}
    base = summarize(base_rows, error_classes=classes)
    lines = [
        "| variant | accuracy | blind spot | rest | gain (95 % CI) | gate |",
        "|---|---|---|---|---|---|",
        f"| base model | {base['accuracy']:.3f} | {base['slices']['blind_spot']['accuracy']:.3f} | "
        f"{base['slices']['rest']['accuracy']:.3f} | | |",
    ]
    for r in results:
        rows = evaluate_dir(Path(r["merged"]), items)
        cand = summarize(rows, error_classes=classes)
        d = services.gate_from_rows(base_rows, rows, serving=base, candidate=cand, error_classes=classes)
        gain, (low, high) = d["gain"], d["ci95"]
        lines.append(
            f"| {r['variant']} | {cand['accuracy']:.3f} | {cand['slices']['blind_spot']['accuracy']:.3f} | "
            f"{cand['slices']['rest']['accuracy']:.3f} | {gain:+.3f} ({low:+.3f} to {high:+.3f}) | "
            f"{'PROMOTE' if d['promote'] else 'reject'}: {d['reason'][:70]} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--real-config", action="store_true")
    parser.add_argument("--corrections", type=int, default=120)
    parser.add_argument("--epochs", type=float, default=8.0)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a TrainConfig option for Cogloop's recipes, e.g. --set curriculum=false",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        options = {k: json.loads(v) for k, _, v in (o.partition("=") for o in args.set)}
        result = run_one(
            args.one,
            Path(args.rows),
            Path(args.model_dir),
            Path(args.out),
            args.epochs,
            args.max_steps,
            options,
        )
        print("RESULT " + json.dumps(result))
        return

    tmp = Path(tempfile.mkdtemp(prefix="cogloop-bench-train-"))
    rows = make_rows(args.corrections, seed=11)
    rows_path = tmp / "rows.json"
    rows_path.write_text(json.dumps(rows))
    model_dir = _real_config_dir(tmp) if args.real_config else TINY
    n_pairs = sum(1 for r in rows if r.get("rejected"))
    print(
        f"{len(rows)} rows ({n_pairs} corrections, {len(rows) - n_pairs} replay), model {model_dir.name}, "
        f"epochs {args.epochs}, max_steps {args.max_steps}, options {args.set or 'default'}"
    )
    results = []
    for variant in args.variants.split(","):
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                variant,
                "--rows",
                str(rows_path),
                "--model-dir",
                str(model_dir),
                "--out",
                str(tmp / variant.replace("+", "_")),
                "--epochs",
                str(args.epochs),
                "--max-steps",
                str(args.max_steps),
                *[f"--set={o}" for o in args.set],
            ],
            capture_output=True,
            text=True,
        )
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(f"{variant} failed:\n{proc.stderr[-3000:]}")
            continue
        results.append(json.loads(line[len("RESULT ") :]))
        print(f"{variant}: {line[len('RESULT ') :]}", flush=True)  # a run cut short keeps what it measured
    base = next((r for r in results if r["variant"] == "peft+Trainer"), None)
    memory = "peak GPU MB" if results and results[0]["gpu"] else "peak RSS MB"
    print(
        f"\n| variant | trainable params | steps | train s | tokens/s | forwarded tokens/s | {memory} | tokens/s vs baseline |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        ratio = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else "-"
        print(
            f"| {r['variant']} | {r['trainable']:,} | {r['steps']} | {r['seconds']} | {r['tokens_per_s']:,} | "
            f"{r['forwarded_per_s']:,} | {r['peak_mb']:,} | {ratio} |"
        )
    if not args.real_config:
        print()
        print("\n".join(gate_table(results)))


if __name__ == "__main__":
    main()
