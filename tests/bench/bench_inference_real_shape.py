"""Serving at the production model's shape: DeepSeek-R1-Distill-Qwen-1.5B's architecture with
random weights, on the device serving would use (a GPU), through serving's own code path.

    python tests/bench/bench_inference_real_shape.py [--device cuda] [--shape r1-distill-1.5b]
        [--clients 64] [--per-client 4] [--a-per-client 1] [--deadline-s 420] [--out FILE]
        [--dtype auto|float32|bfloat16] [--phases a,c,c-head,c-head-forward,swap,states,equality,b]

The model directory is written with random weights in bfloat16 (the real checkpoint's dtype),
a sha256 manifest beside it, and loaded by ``loading.load_model`` with that manifest, as a
serving process loads a version. The output rows of token ids that cogloop-tiny's tokenizer
lacks are zeroed, so greedy decoding picks tokens that decode to text; the matrix keeps its
151,936 rows, so the work per token is the real model's. Random weights rarely stop at EOS:
every answer runs its whole budget, in (a) and (c) alike.

Measured, in order, each phase skipped once ``--deadline-s`` has passed or when ``--phases``
leaves it out:
(a) one request at a time (the batcher with batches of one; ``--a-per-client`` requests per
client: at a second or more per request on a GPU, 64 x 4 would take minutes), (c) the
DynamicBatcher with 64 clients, (c) with the metacognition head as served and with the head
read by a second forward, a hot-swap under (c)'s load (load + sha256 + smoke in the
background), generation with and without the head's states and of one row alone
(interleaved repeats), the head's reading of one batch, batched against unbatched greedy
output, (b)
transformers' continuous batching, and scoring's share of a generation. Prints markdown and
writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from inference.engine import loading, workload  # noqa: E402
from inference.engine.batcher import BatcherConfig, DynamicBatcher  # noqa: E402
from inference.engine.generation import (  # noqa: E402
    GenerationParams,
    LoadedModel,
    ModelSlot,
    generate_batch,
    generate_batch_with_states,
)
from inference.engine.metahead import MetaHead, MetaHeadConfig  # noqa: E402
from inference.engine.parser import parse_output  # noqa: E402
from inference.engine.scoring import score_output  # noqa: E402
from inference.engine.tiny import prompt_text  # noqa: E402
from tests.bench.bench_inference import (  # noqa: E402
    PARAMS,
    SMOKE,
    batcher_run,
    head_read_by_a_second_forward,
    hot_swap_under_load,
    transformers_batch_row,
)
from tests.bench.shapes import SHAPES, shaped_model_dir  # noqa: E402

PHASES = ("a", "c", "c-head", "c-head-forward", "swap", "states", "equality", "b")


class Report:
    """Lines printed as they come (a run cut short still shows what it measured) and kept."""

    def __init__(self, out: Path | None):
        self.out, self.lines = out, []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)
        if self.out:
            self.out.write_text("\n".join(self.lines) + "\n")


def synced(fn):
    """``fn()``'s result and its wall time in seconds, the device's queued work included."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - started


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--shape", default="r1-distill-1.5b", choices=sorted(SHAPES))
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--per-client", type=int, default=4)
    ap.add_argument("--a-per-client", type=int, default=1, help="requests per client in (a)")
    ap.add_argument("--deadline-s", type=float, default=420.0, help="skip the phases that start after this")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--phases", default=",".join(PHASES), help=f"which of {','.join(PHASES)} to run")
    args = ap.parse_args()
    phases = set(args.phases.split(","))
    if phases - set(PHASES):
        ap.error(f"unknown phases {sorted(phases - set(PHASES))}; choose from {','.join(PHASES)}")
    report = Report(args.out)
    began = time.monotonic()

    def time_left(phase: str, key: str) -> bool:
        if key not in phases:
            return False
        if time.monotonic() - began < args.deadline_s:
            return True
        report(f"- {phase}: skipped, past the {args.deadline_s:.0f} s deadline")
        return False

    import transformers

    where, dtype = loading.resolve_placement(args.device, args.dtype)
    gpu = torch.cuda.get_device_name(where) if where.type == "cuda" else "CPU"
    report(
        f"# Serving at the {args.shape} shape (random weights), {gpu}, {dtype}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}"
    )
    report(
        f"{args.clients} concurrent clients, greedy, {PARAMS.max_new_tokens} new tokens; (a) "
        f"{args.clients} x {args.a_per_client} requests, (c) {args.clients} x {args.per_client}"
    )
    report()

    tmp = Path(tempfile.mkdtemp(prefix="cogloop-shape-"))
    (model_dir, save_s) = synced(
        lambda: shaped_model_dir(
            tmp / args.shape, SHAPES[args.shape], device=str(where), dtype=torch.bfloat16, decodable=True
        )
    )
    manifest, manifest_s = synced(lambda: loading.write_manifest(model_dir))
    size_gb = sum(p.stat().st_size for p in model_dir.rglob("*.safetensors")) / 1e9
    (model, tokenizer), load_s = synced(
        lambda: loading.load_model(
            model_dir, expected_manifest=manifest, device=args.device, dtype=args.dtype
        )
    )
    smoke, smoke_s = synced(
        lambda: generate_batch(model, tokenizer, [SMOKE], GenerationParams(max_new_tokens=8))
    )
    n_params = sum(p.numel() for p in model.parameters())
    report(
        f"- model: {n_params / 1e9:.2f} B parameters, {size_gb:.2f} GB of safetensors; written in {save_s:.1f} s, "
        f"manifest {manifest_s:.1f} s, load with sha256 check {load_s:.1f} s, smoke generation {smoke_s:.2f} s "
        f"({smoke[0].completion_tokens} tokens)"
    )

    prompts = [p.prompt for p in workload.problems(256, seed=99, split="train")]
    cfg = SimpleNamespace(clients=args.clients, per_client=args.per_client)
    one_cfg = SimpleNamespace(clients=args.clients, per_client=args.a_per_client)
    head = MetaHead(MetaHeadConfig.for_hidden(model.config.hidden_size, trained=True)).to(where).eval()
    slot, head_slot = ModelSlot(), ModelSlot()
    slot.swap(LoadedModel(1, model, tokenizer))
    head_slot.swap(LoadedModel(1, model, tokenizer, head=head))
    one_at_a_time = BatcherConfig(simple_max_batch=1, complex_max_batch=1)
    batched = BatcherConfig()
    for s in (slot, head_slot) if phases & {"a", "c", "c-head", "c-head-forward", "swap"} else ():
        # warm-up: kernels chosen, allocator grown, for both paths
        warm = DynamicBatcher(s, batched)
        for f in [warm.submit(p, PARAMS) for p in prompts[:32]]:
            f.result()
        warm.stop()

    rows: dict[str, dict] = {}
    modes = [
        ("a", "(a) one request at a time", slot, one_at_a_time, one_cfg, None),
        ("c", "(c) Cogloop DynamicBatcher", slot, batched, cfg, None),
        ("c-head", "(c) with the metacognition head (as served)", head_slot, batched, cfg, None),
        (
            "c-head-forward",
            "(c) with the head read by a second forward (before)",
            head_slot,
            batched,
            cfg,
            head_read_by_a_second_forward,
        ),
    ]
    for key, name, s, config, clients, context in modes:
        if not time_left(name, key):
            continue
        with context() if context else contextlib.nullcontext():
            rows[name] = batcher_run(s, config, clients, prompts)  # every request's answer is on the host
        r = rows[name]
        report(
            f"- {name}: {r['ok']} ok, {r['failed']} failed, {r['rps']:.1f} requests/s, p50 {r['p50']:.0f} ms, "
            f"p99 {r['p99']:.0f} ms, mean batch {r['mean_batch']:.1f}, mean batch time {r['batch_ms']:.0f} ms"
        )

    if time_left("hot-swap under load", "swap"):
        rows["(c) during a hot-swap"], swap = hot_swap_under_load(
            slot,
            batched,
            cfg,
            prompts,
            lambda: loading.load_model(
                model_dir,
                expected_manifest=loading.build_manifest(model_dir),
                device=args.device,
                dtype=args.dtype,
            ),
        )
        r = rows["(c) during a hot-swap"]
        report(
            f"- (c) during a hot-swap: {r['ok']} ok, {r['failed']} failed, {r['rps']:.1f} requests/s, "
            f"p99 {r['p99']:.0f} ms; load + sha256 + smoke {swap.get('load_verify_smoke_s', float('nan')):.1f} s "
            f"in the background, the swap itself {swap.get('swap_ms', float('nan')):.3f} ms; "
            f"served by version {slot.current.version_id} after"
        )
        slot.swap(LoadedModel(1, model, tokenizer))  # the swapped-in copy goes with its last reference

    if time_left("the head's reading", "states"):
        from inference.engine.meta_serving import annotate_batch, annotate_generations

        batch = prompts[:32]
        # Interleaved repeats: one call on a shared host can come out 3x slower than the next.
        timings: dict[str, list[float]] = {"with states": [], "without": [], "one row": []}
        for _ in range(4):
            (gens, fed), seconds = synced(lambda: generate_batch_with_states(model, tokenizer, batch, PARAMS))
            timings["with states"].append(seconds)
            timings["without"].append(synced(lambda: generate_batch(model, tokenizer, batch, PARAMS))[1])
            timings["one row"].append(synced(lambda: generate_batch(model, tokenizer, batch[:1], PARAMS))[1])
        report(
            "- generation of 96 tokens, medians of 4 interleaved: "
            + ", ".join(
                f"{name} {1000 * statistics.median(v):.0f} ms (range {1000 * min(v):.0f}-{1000 * max(v):.0f})"
                for name, v in timings.items()
            )
            + " (batch of 32 unless one row)"
        )
        texts = [g.text for g in gens]
        reads, fwds = [], []
        for _ in range(5):
            reads.append(synced(lambda: annotate_generations(model, tokenizer, head, batch, texts, fed))[1])
            fwds.append(synced(lambda: annotate_batch(model, tokenizer, head, batch, texts))[1])
        enc = tokenizer(
            [prompt_text(tokenizer, p) + t for p, t in zip(batch, texts)], add_special_tokens=False
        )
        round_trip = sum(
            1 for ids, f in zip(enc["input_ids"], fed) if f is not None and list(ids) == f.token_ids
        )
        report(
            f"- head on a batch of 32: reading the states {1000 * statistics.median(reads):.1f} ms, a second forward "
            f"{1000 * statistics.median(fwds):.1f} ms (medians of 5); {round_trip}/32 rows re-encode to the "
            f"tokens fed (the rest are read by the forward)"
        )

    if time_left("batched against unbatched", "equality"):
        few = prompts[:8]
        short = GenerationParams(max_new_tokens=32)
        together = [g.text for g in generate_batch(model, tokenizer, few, short)]
        alone = [generate_batch(model, tokenizer, [p], short)[0].text for p in few]
        report(
            f"- greedy, batch of 8 against one at a time, 32 tokens, {dtype}: "
            f"{sum(a == b for a, b in zip(together, alone))}/8 identical"
        )

    total = args.clients * args.per_client
    if time_left("(b) transformers generate_batch", "b"):
        try:
            cb_model, _ = loading.load_model(model_dir, device=args.device, dtype=args.dtype)
            r = rows["(b) transformers generate_batch (all prompts at once)"] = transformers_batch_row(
                cb_model, tokenizer, prompts, total
            )
            report(f"- (b) transformers generate_batch, {total} prompts at once: {r['rps']:.1f} requests/s")
            del cb_model
        except Exception as exc:
            report(f"- (b) transformers generate_batch failed: {type(exc).__name__}: {str(exc)[:200]}")

    a_name = "(a) one request at a time"
    report()
    report("| mode | ok | failed | requests/s | p50 ms | p99 ms | vs (a) |")
    report("|---|---|---|---|---|---|---|")
    for name in (
        a_name,
        "(b) transformers generate_batch (all prompts at once)",
        "(c) Cogloop DynamicBatcher",
        "(c) during a hot-swap",
        "(c) with the metacognition head (as served)",
        "(c) with the head read by a second forward (before)",
    ):
        if name not in rows:
            continue
        r = rows[name]
        ratio = f"{r['rps'] / rows[a_name]['rps']:.1f}x" if a_name in rows else "—"
        report(
            f"| {name} | {r['ok']} | {r['failed']} | {r['rps']:.1f} | {r['p50']:.0f} | {r['p99']:.0f} | {ratio} |"
        )
    if a_name in rows:
        gens = generate_batch(model, tokenizer, prompts[:32], PARAMS)
        t = time.perf_counter()
        for g in gens:
            score_output(parse_output(g.text))
        score_ms = 1000 * (time.perf_counter() - t) / len(gens)
        gen_ms = 1000 * rows[a_name]["seconds"] / max(1, rows[a_name]["ok"])
        report(
            f"scoring (parse + score) {score_ms:.3f} ms per output = {100 * score_ms / gen_ms:.3f}% of one "
            f"unbatched generation ({gen_ms:.0f} ms)"
        )
    if where.type == "cuda":
        report(f"peak GPU memory allocated {torch.cuda.max_memory_allocated(where) / 2**30:.1f} GiB")
    report(f"whole run {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
