"""Serving throughput on cogloop-tiny at 64 concurrent clients, three ways, in one run.

    python tests/bench/bench_inference.py [--clients 64] [--per-client 4]

(a) one request at a time: every client's request generates alone (a lock around generate)
(b) transformers' own continuous batching, ``model.generate_batch`` with every prompt at once
    (an offline API: its latency is the whole batch's; it is the throughput reference)
(c) Cogloop's DynamicBatcher, the clients submitting concurrently and waiting
Then a hot-swap under the same load through the batcher (failed requests, p99, swap time),
and the scoring overhead (parse + score) as a share of generation time per request.
Greedy decoding, max_new_tokens 96. Prints markdown.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

torch.set_num_threads(2)

from inference.engine import loading, workload  # noqa: E402
from inference.engine.batcher import BatcherConfig, DynamicBatcher  # noqa: E402
from inference.engine.generation import GenerationParams, LoadedModel, ModelSlot, generate_batch  # noqa: E402
from inference.engine.parser import parse_output  # noqa: E402
from inference.engine.scoring import score_output  # noqa: E402
from inference.engine.tiny import prompt_text  # noqa: E402

PARAMS = GenerationParams(max_new_tokens=96)


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]


def run_clients(clients, per_client, prompts, call):
    latencies, failures = [], []
    lock = threading.Lock()

    def client(c):
        for i in range(per_client):
            prompt = prompts[(c * per_client + i) % len(prompts)]
            t = time.perf_counter()
            try:
                call(prompt)
                ok = True
            except Exception as exc:  # counted, not raised
                ok = False
                failures.append(repr(exc))
            with lock:
                if ok:
                    latencies.append(time.perf_counter() - t)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {"ok": len(latencies), "failed": len(failures), "seconds": elapsed, "rps": len(latencies) / elapsed,
            "p50": 1000 * statistics.median(latencies), "p99": 1000 * percentile(latencies, 0.99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--per-client", type=int, default=4)
    args = ap.parse_args()
    model, tokenizer = loading.load_model(ROOT / "inference" / "engine" / "cogloop_tiny")
    prompts = [p.prompt for p in workload.problems(256, seed=99, split="train")]
    total = args.clients * args.per_client
    rows = {}

    lock = threading.Lock()

    def one_at_a_time(prompt):
        with lock:
            generate_batch(model, tokenizer, [prompt], PARAMS)

    generate_batch(model, tokenizer, prompts[:4], PARAMS)  # warm-up
    slot = ModelSlot()
    slot.swap(LoadedModel(1, model, tokenizer))
    batcher = DynamicBatcher(slot, BatcherConfig())
    sizes = []
    batch_secs = []
    batcher.on_batch = lambda n, s: (sizes.append(n), batch_secs.append(s))
    rows["(c) Cogloop DynamicBatcher"] = run_clients(args.clients, args.per_client, prompts,
                                                    lambda p: batcher.generate(p, PARAMS))
    mean_batch = statistics.mean(sizes)

    rows["(a) one request at a time"] = run_clients(args.clients, args.per_client, prompts, one_at_a_time)


    # Hot-swap under the same load: load + verify happen in the background, the swap is one assignment.
    swap = {}

    def swapper():
        time.sleep(1.0)
        t = time.perf_counter()
        m2, t2 = loading.load_model(ROOT / "inference" / "engine" / "cogloop_tiny",
                                    expected_manifest=loading.build_manifest(ROOT / "inference" / "engine" / "cogloop_tiny"))
        generate_batch(m2, t2, ["Start with 12. Add 3. What is the result?"], GenerationParams(max_new_tokens=8))
        swap["load_verify_smoke_s"] = time.perf_counter() - t
        t = time.perf_counter()
        slot.swap(LoadedModel(2, m2, t2))
        swap["swap_ms"] = 1000 * (time.perf_counter() - t)

    th = threading.Thread(target=swapper)
    th.start()
    during = run_clients(args.clients, args.per_client, prompts, lambda p: batcher.generate(p, PARAMS))
    th.join()
    batcher.stop()

    try:
        from transformers import GenerationConfig

        # Its own copy: continuous batching switches the model it runs on to paged attention.
        cb_model, _ = loading.load_model(ROOT / "inference" / "engine" / "cogloop_tiny")

        ids = [tokenizer(prompt_text(tokenizer, p), add_special_tokens=False)["input_ids"]
               for p in (prompts * (total // len(prompts) + 1))[:total]]
        config = GenerationConfig(max_new_tokens=96, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id)
        started = time.perf_counter()
        out = cb_model.generate_batch(inputs=ids, generation_config=config, progress_bar=False)
        elapsed = time.perf_counter() - started
        done = sum(1 for o in out.values() if not getattr(o, "error", None))
        rows["(b) transformers generate_batch (all prompts at once)"] = {
            "ok": done, "failed": total - done, "seconds": elapsed, "rps": done / elapsed,
            "p50": 1000 * elapsed, "p99": 1000 * elapsed}
    except Exception as exc:
        rows["(b) transformers generate_batch (all prompts at once)"] = {"error": f"{type(exc).__name__}: {exc}"[:200]}

    # Scoring overhead per request.
    gens = generate_batch(model, tokenizer, prompts[:32], PARAMS)
    t = time.perf_counter()
    for _ in range(10):
        for g in gens:
            score_output(parse_output(g.text))
    score_ms = 1000 * (time.perf_counter() - t) / (10 * len(gens))
    gen_ms = rows["(a) one request at a time"]["seconds"] * 1000 / max(1, rows["(a) one request at a time"]["ok"])

    base = rows["(a) one request at a time"]["rps"]
    print(f"cogloop-tiny, {args.clients} concurrent clients x {args.per_client} requests, greedy, 96 new tokens, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| mode | ok | failed | requests/s | p50 ms | p99 ms | vs (a) |")
    print("|---|---|---|---|---|---|---|")
    order = ["(a) one request at a time", "(b) transformers generate_batch (all prompts at once)",
             "(c) Cogloop DynamicBatcher"]
    for name, r in ((n, rows[n]) for n in order):
        if "error" in r:
            print(f"| {name} | — | — | — | — | — | {r['error']} |")
            continue
        print(f"| {name} | {r['ok']} | {r['failed']} | {r['rps']:.1f} | {r['p50']:.0f} | {r['p99']:.0f} | "
              f"{r['rps'] / base:.1f}x |")
    print(f"| (c) during a hot-swap | {during['ok']} | {during['failed']} | {during['rps']:.1f} | {during['p50']:.0f} | "
          f"{during['p99']:.0f} | {during['rps'] / base:.1f}x |")
    print()
    print(f"mean batch size under load: {mean_batch:.1f}, mean batch time {1000 * statistics.mean(batch_secs):.0f} ms")
    print(f"swap: load + sha256 verify + smoke generation {swap['load_verify_smoke_s']:.2f}s in the background; "
          f"the swap itself {swap['swap_ms']:.3f} ms")
    print(f"scoring (parse + score) {score_ms:.3f} ms per output = {100 * score_ms / gen_ms:.2f}% of one "
          f"unbatched generation ({gen_ms:.0f} ms)")


if __name__ == "__main__":
    main()
