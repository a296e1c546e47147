"""Serving throughput on cogloop-tiny at 64 concurrent clients, three ways, in one run.

    python tests/bench/bench_inference.py [--clients 64] [--per-client 4] [--rounds 3] [--threads N]

Run it on a machine with nothing else running: the batcher's thread uses ``--threads`` intra-op
threads (default: every core this process may use), in (a) and (c) alike.

(a) one request at a time: serving's own path (the batcher) with batches of one, so every
    request generates alone, after the one before it
(b) transformers' own continuous batching, ``model.generate_batch`` with every prompt at once
    (an offline API: its latency is the whole batch's; it is the throughput reference)
(c) Cogloop's DynamicBatcher, the clients submitting concurrently and waiting
(a) and (c) also with the metacognition head as served (it reads the states generation
computed), and (c) with the head read by a second forward (how it was served before). These
five take turns for ``--rounds`` rounds, so a change in the machine's load falls on all of
them; each round's ratio is printed beside the pooled table.
Then a hot-swap under the same load through the batcher (failed requests, p99, swap time),
(a) and (c) again beside a long-lived thread that has run the model (the old setup: see
``another_thread_holding_a_team``), and the scoring overhead (parse + score) as a share of
generation time per request.
Greedy decoding, max_new_tokens 96. Prints markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import sys
import threading
import time
from pathlib import Path

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
    run_on_own_thread,
)
from inference.engine.parser import parse_output  # noqa: E402
from inference.engine.scoring import score_output  # noqa: E402
from inference.engine.tiny import prompt_text  # noqa: E402
from tests.bench.clients import run_clients  # noqa: E402

PARAMS = GenerationParams(max_new_tokens=96)
A = "(a) one request at a time"
B = "(b) transformers generate_batch (all prompts at once)"
C = "(c) Cogloop DynamicBatcher"
A_OLD = "(a) beside a thread holding an OpenMP team (old)"
C_OLD = "(c) beside a thread holding an OpenMP team (old)"
A_HEAD = "(a) with the metacognition head (as served)"
C_HEAD = "(c) with the metacognition head (as served)"
C_HEAD_FORWARD = "(c) with the head read by a second forward (before)"
OLD_THREADS = 2  # what this benchmark used to set for the whole process


@contextlib.contextmanager
def another_thread_holding_a_team(model, tokenizer, prompt):
    """A long-lived thread that has run the model, alive for the block: how the bench's main
    thread (loading + warm-up) and serving's watcher (smoke generation) used to sit beside the
    batcher. Its OpenMP team stays until it exits, and from then on every team sleeps between
    parallel regions (see generation.run_on_own_thread). Shows the old behaviour in this run."""
    release, ready = threading.Event(), threading.Event()

    def hold():
        torch.set_num_threads(OLD_THREADS)
        generate_batch(model, tokenizer, [prompt], GenerationParams(max_new_tokens=8))
        ready.set()
        release.wait()

    holder = threading.Thread(target=hold, name="holds-an-openmp-team")
    holder.start()
    ready.wait()
    try:
        yield
    finally:
        release.set()
        holder.join()


@contextlib.contextmanager
def head_read_by_a_second_forward():
    """How the head was served before: generation hands over no states, so every row of a batch
    is read by one more padded forward over prompt + completion (meta_serving's fallback)."""
    from inference.engine import meta_serving

    def without_states(model, tokenizer, prompts, params, *, budgets=None):
        return generate_batch(model, tokenizer, prompts, params, budgets=budgets), [None] * len(prompts)

    kept = meta_serving.generate_batch_with_states
    meta_serving.generate_batch_with_states = without_states
    try:
        yield
    finally:
        meta_serving.generate_batch_with_states = kept


def batcher_run(slot, config, args, prompts):
    """Run the clients through a fresh batcher; stop it after, so its thread (and team) is gone."""
    batcher = DynamicBatcher(slot, config)
    sizes, secs, cpu, process_cpu = [], [], [], []
    # thread_time() here is the batcher thread's CPU time: with one intra-op thread, the work per
    # request whatever else the machine is running (between the first and the last batch). With
    # more, its OpenMP helpers work too: process_time() counts every thread of the process (the
    # helpers, and the clients' small share as well).
    batcher.on_batch = lambda n, s: (
        sizes.append(n),
        secs.append(s),
        cpu.append(time.thread_time()),
        process_cpu.append(time.process_time()),
    )
    row = run_clients(
        args.clients,
        args.per_client,
        lambda c: lambda i: batcher.generate(prompts[(c * args.per_client + i) % len(prompts)], PARAMS),
    )
    batcher.stop()
    row.update(
        mean_batch=statistics.mean(sizes),
        batch_ms=1000 * statistics.mean(secs),
        cpu_ms_per_request=1000 * (cpu[-1] - cpu[0]) / max(1, sum(sizes[1:])),
        process_cpu_ms_per_request=1000 * (process_cpu[-1] - process_cpu[0]) / max(1, sum(sizes[1:])),
    )
    return row


def pooled(runs: list[dict]) -> dict:
    """Rounds of one mode as one row: requests over total time; the median round's latencies."""
    row = {
        "ok": sum(r["ok"] for r in runs),
        "failed": sum(r["failed"] for r in runs),
        "seconds": sum(r["seconds"] for r in runs),
    }
    row["rps"] = row["ok"] / row["seconds"]
    for key in ("p50", "p99", "mean_batch", "batch_ms", "cpu_ms_per_request", "process_cpu_ms_per_request"):
        row[key] = statistics.median(r[key] for r in runs)
    row["rounds"] = runs
    return row


SMOKE = "Start with 12. Add 3. What is the result?"


def hot_swap_under_load(slot, config, args, prompts, load_verified) -> tuple[dict, dict]:
    """(c) through ``slot`` while a thread that ends loads the next version (``load_verified()``:
    (model, tokenizer) after its manifest check), smoke-tests it and swaps it in, as serving's
    load_version thread does. Returns the clients' row and the swap's timings."""
    swap: dict[str, float] = {}

    def swapper():
        time.sleep(1.0)
        t = time.perf_counter()
        model, tokenizer = load_verified()
        generate_batch(model, tokenizer, [SMOKE], GenerationParams(max_new_tokens=8))
        swap["load_verify_smoke_s"] = time.perf_counter() - t
        t = time.perf_counter()
        slot.swap(LoadedModel(2, model, tokenizer))
        swap["swap_ms"] = 1000 * (time.perf_counter() - t)

    thread = threading.Thread(target=swapper)
    thread.start()
    row = batcher_run(slot, config, args, prompts)
    thread.join()
    return row, swap


def transformers_batch_row(cb_model, tokenizer, prompts, total: int) -> dict:
    """(b): ``total`` prompts in one ``generate_batch`` call (continuous batching) on ``cb_model``,
    a copy of its own (the call switches the model it runs on to paged attention). Its latency
    is the whole call's."""
    from transformers import GenerationConfig

    ids = [
        tokenizer(prompt_text(tokenizer, p), add_special_tokens=False)["input_ids"]
        for p in (prompts * (total // len(prompts) + 1))[:total]
    ]
    config = GenerationConfig(
        max_new_tokens=PARAMS.max_new_tokens,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    started = time.perf_counter()
    out = cb_model.generate_batch(inputs=ids, generation_config=config, progress_bar=False)
    elapsed = time.perf_counter() - started  # the answers are on the host: the device's work is done
    done = sum(1 for o in out.values() if not getattr(o, "error", None))
    return {
        "ok": done,
        "failed": total - done,
        "seconds": elapsed,
        "rps": done / elapsed,
        "p50": 1000 * elapsed,
        "p99": 1000 * elapsed,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--per-client", type=int, default=4)
    ap.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="torch intra-op threads of the batcher's thread (BatcherConfig.intra_op_threads; default: "
        "the cores this process may use, as a serving process that owns its machine is set up; "
        "1 is serving's default for cores shared with other processes)",
    )
    ap.add_argument(
        "--rounds", type=int, default=3, help="rounds of (a), (c) and the head's modes, taking turns"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tiny = ROOT / "inference" / "engine" / "cogloop_tiny"
    # Loaded off the main thread, as serving loads versions: the main thread runs no torch op
    # until the scoring step at the end, so the batcher's thread is the only one with a team.
    model, tokenizer = run_on_own_thread(loading.load_model, tiny)
    prompts = [p.prompt for p in workload.problems(256, seed=99, split="train")]
    total = args.clients * args.per_client
    rows = {}

    slot = ModelSlot()
    slot.swap(LoadedModel(1, model, tokenizer))
    # (a) is serving's own path with batches of one: each request waits for the one before it
    # and generates alone, on the batcher's thread.
    one_at_a_time = BatcherConfig(simple_max_batch=1, complex_max_batch=1, intra_op_threads=args.threads)
    batched = BatcherConfig(intra_op_threads=args.threads)

    warm = DynamicBatcher(slot, batched)
    for f in [warm.submit(p, PARAMS) for p in prompts[:32]]:
        f.result()
    warm.stop()

    # What serving runs: every batch also goes through the head, which reads the states
    # generation computed.
    from inference.engine.metahead import MetaHead, MetaHeadConfig

    head_slot = ModelSlot()
    head_slot.swap(
        LoadedModel(
            1,
            model,
            tokenizer,
            head=MetaHead(MetaHeadConfig.for_hidden(model.config.hidden_size, trained=True)),
        )
    )

    # The modes take turns, round after round: a change in the machine's load then falls on
    # all of them instead of on whichever ran while it lasted. Each round's ratios are printed.
    rounds: dict[str, list[dict]] = {A: [], C: [], A_HEAD: [], C_HEAD: [], C_HEAD_FORWARD: []}
    for _ in range(args.rounds):
        rounds[A].append(batcher_run(slot, one_at_a_time, args, prompts))
        rounds[C].append(batcher_run(slot, batched, args, prompts))
        rounds[A_HEAD].append(batcher_run(head_slot, one_at_a_time, args, prompts))
        rounds[C_HEAD].append(batcher_run(head_slot, batched, args, prompts))
        with head_read_by_a_second_forward():
            rounds[C_HEAD_FORWARD].append(batcher_run(head_slot, batched, args, prompts))
    for name, runs in rounds.items():
        rows[name] = pooled(runs)

    # Hot-swap under the same load: load + verify happen in the background, the swap is one assignment.
    during, swap = hot_swap_under_load(
        slot,
        batched,
        args,
        prompts,
        lambda: loading.load_model(tiny, expected_manifest=loading.build_manifest(tiny)),
    )

    try:
        rows[B] = transformers_batch_row(
            run_on_own_thread(loading.load_model, tiny)[0], tokenizer, prompts, total
        )
    except Exception as exc:
        rows[B] = {"error": f"{type(exc).__name__}: {exc}"[:200]}

    # The old setup, in the same run: 2 threads, and a long-lived thread holding a team beside
    # the batcher (last, as 2 threads becomes the default of threads that start after).
    with another_thread_holding_a_team(model, tokenizer, prompts[0]):
        rows[A_OLD] = batcher_run(
            slot, dataclasses.replace(one_at_a_time, intra_op_threads=OLD_THREADS), args, prompts
        )
        rows[C_OLD] = batcher_run(
            slot, dataclasses.replace(batched, intra_op_threads=OLD_THREADS), args, prompts
        )

    # Scoring overhead per request.
    gens = generate_batch(model, tokenizer, prompts[:32], PARAMS)
    t = time.perf_counter()
    for _ in range(10):
        for g in gens:
            score_output(parse_output(g.text))
    score_ms = 1000 * (time.perf_counter() - t) / (10 * len(gens))
    gen_ms = rows[A]["seconds"] * 1000 / max(1, rows[A]["ok"])

    print(
        f"cogloop-tiny, {args.clients} concurrent clients x {args.per_client} requests, greedy, 96 new tokens, "
        f"(a), (c) and the head's rows pooled over {args.rounds} rounds taking turns, "
        f"torch {torch.__version__}, {args.threads} intra-op thread(s); old rows: {OLD_THREADS}"
    )
    print("| mode | ok | failed | requests/s | p50 ms | p99 ms | vs (a) |")
    print("|---|---|---|---|---|---|---|")
    rows["(c) during a hot-swap"] = during
    for name, base in (
        (A, A),
        (B, A),
        (C, A),
        ("(c) during a hot-swap", A),
        (A_HEAD, A_HEAD),
        (C_HEAD, A_HEAD),
        (C_HEAD_FORWARD, A_HEAD),
        (A_OLD, A_OLD),
        (C_OLD, A_OLD),
    ):
        r = rows[name]
        if "error" in r:
            print(f"| {name} | — | — | — | — | — | {r['error']} |")
            continue
        print(
            f"| {name} | {r['ok']} | {r['failed']} | {r['rps']:.1f} | {r['p50']:.0f} | {r['p99']:.0f} | "
            f"{r['rps'] / rows[base]['rps']:.1f}x{ {A: '', A_HEAD: ' of (a) with the head', A_OLD: ' of old (a)'}[base] } |"
        )
    print()
    for name in (A, C, "(c) during a hot-swap", A_HEAD, C_HEAD, C_HEAD_FORWARD, A_OLD, C_OLD):
        print(
            f"{name}: mean batch size {rows[name]['mean_batch']:.1f}, mean batch time {rows[name]['batch_ms']:.0f} ms, "
            f"batcher-thread CPU {rows[name]['cpu_ms_per_request']:.1f} ms per request, "
            f"process CPU {rows[name]['process_cpu_ms_per_request']:.1f} ms per request"
        )
    for name, base in ((C, A), (C_HEAD, A_HEAD), (C_HEAD, A), (C_HEAD_FORWARD, A_HEAD)):
        ratios = [c["rps"] / a["rps"] for c, a in zip(rows[name]["rounds"], rows[base]["rounds"])]
        print(
            f"{name} / {base}, round by round: {', '.join(f'{r:.1f}x' for r in ratios)} "
            f"(median {statistics.median(ratios):.1f}x)"
        )
    print(
        f"CPU per request, (a) / (c): batcher thread {rows[A]['cpu_ms_per_request'] / rows[C]['cpu_ms_per_request']:.1f}x, "
        f"whole process {rows[A]['process_cpu_ms_per_request'] / rows[C]['process_cpu_ms_per_request']:.1f}x "
        f"(with {args.threads} intra-op thread(s); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(
        f"swap: load + sha256 verify + smoke generation {swap['load_verify_smoke_s']:.2f}s in the background; "
        f"the swap itself {swap['swap_ms']:.3f} ms"
    )
    print(
        f"scoring (parse + score) {score_ms:.3f} ms per output = {100 * score_ms / gen_ms:.2f}% of one "
        f"unbatched generation ({gen_ms:.0f} ms)"
    )


if __name__ == "__main__":
    main()
