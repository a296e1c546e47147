"""Dynamic batching: concurrent requests are queued, grouped by complexity, and generated together.

Requests fall in two classes by an estimate of their cost (prompt length and requested
reasoning budget): ``simple`` batches up to ``simple_max_batch`` (32), ``complex`` up to
``complex_max_batch`` (4), so a long reasoning request never holds 31 short ones hostage.
A batch leaves when it is full or when its oldest request has waited ``max_wait_ms``.

Within a batch, requests share sampling settings (temperature, top_p): the batch key is
(class, temperature, top_p). Each sequence keeps its own token budget: the batch generates
up to the largest budget and every completion is cut at its own, which for greedy decoding
is exactly what generating it alone gives (tested). Left padding with an attention mask
keeps padded rows from seeing the padding.

A sample group (``submit_group``: n answers to one prompt, for self-consistency) is one
request of n rows that is never split: its rows generate in one batch, counted against the
batch size like n requests, and a group larger than its class's batch runs as a batch of its
own. Its rows share the group's sampling settings by construction.

The batcher's thread is the only long-lived thread that runs the model: other model work (a
version's load and smoke test) runs on a thread that ends, see ``run_on_own_thread``.

The batcher takes ``slot.current`` once per batch: a swap during a batch lets that batch
finish on the model it started with, and each result names the version that produced it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from .generation import Generation, GenerationParams, ModelSlot


@dataclass
class BatcherConfig:
    simple_max_batch: int = 32
    complex_max_batch: int = 4
    max_wait_ms: float = 10.0
    # A request is complex when its prompt or its reasoning budget exceeds these.
    complex_prompt_chars: int = 1200
    complex_max_new_tokens: int = 256
    # torch intra-op threads for the batcher's thread (None: the process's torch setting). With
    # more than one, each of the thousands of small ops per generation ends at an OpenMP
    # barrier: fast on cores of its own, but on a machine whose cores other processes share
    # every barrier can wait out a time slice for a descheduled helper thread (cogloop-tiny on
    # 2 busy cores: 2.5 s per request with 2 threads, 0.19 s with 1; docs/benchmarks.md).
    intra_op_threads: int | None = None


@dataclass
class BatchResult:
    generation: Generation
    version_id: int | None
    batch_size: int
    queued_ms: float
    meta: dict | None = None  # the metacognition head's per-step strategies and confidence


@dataclass
class _Request:
    prompt: str
    params: GenerationParams
    future: Future
    enqueued_at: float = field(default_factory=time.monotonic)
    samples: int | None = None  # a group's size: its future resolves to a list of results

    @property
    def rows(self) -> int:
        return self.samples or 1


class BatcherStopped(RuntimeError):
    pass


def classify(prompt: str, params: GenerationParams, config: BatcherConfig) -> str:
    if len(prompt) > config.complex_prompt_chars or params.max_new_tokens > config.complex_max_new_tokens:
        return "complex"
    return "simple"


class DynamicBatcher:
    def __init__(self, slot: ModelSlot, config: BatcherConfig | None = None, on_batch=None):
        self.slot = slot
        self.config = config or BatcherConfig()
        self.on_batch = on_batch  # called with (batch_size, seconds) after each batch, for metrics
        self._queues: dict[tuple, deque[_Request]] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- client side ---------------------------------------------------------------------------

    def submit(self, prompt: str, params: GenerationParams) -> Future:
        """Queue one request; the future resolves to a BatchResult (or raises)."""
        return self._enqueue(_Request(prompt, params, Future()))

    def submit_group(self, prompt: str, params: GenerationParams, n: int) -> Future:
        """Queue ``n`` samples of one prompt as one group; the future resolves to n BatchResults."""
        if n < 1:
            raise ValueError("a sample group needs at least one sample")
        return self._enqueue(_Request(prompt, params, Future(), samples=n))

    def generate_group(
        self, prompt: str, params: GenerationParams, n: int, timeout: float | None = None
    ) -> list[BatchResult]:
        return self.submit_group(prompt, params, n).result(timeout=timeout)

    def _enqueue(self, request: _Request) -> Future:
        prompt, params = request.prompt, request.params
        key = (classify(prompt, params, self.config), params.temperature, params.top_p)
        with self._cond:
            if self._stopping:
                raise BatcherStopped("the batcher is stopping")
            self._queues.setdefault(key, deque()).append(request)
            self._cond.notify()
        self.start()
        return request.future

    def generate(self, prompt: str, params: GenerationParams, timeout: float | None = None) -> BatchResult:
        return self.submit(prompt, params).result(timeout=timeout)

    # -- server side ---------------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name="dynamic-batcher", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout)

    def _max_batch(self, key: tuple) -> int:
        return self.config.simple_max_batch if key[0] == "simple" else self.config.complex_max_batch

    def _next_batch(self) -> tuple[tuple, list[_Request]] | None:
        """Block until a batch is due: full (in rows), or its oldest request waited max_wait_ms."""
        wait = self.config.max_wait_ms / 1000
        with self._cond:
            while True:
                ready = [(q[0].enqueued_at, key) for key, q in self._queues.items() if q]
                if not ready:
                    if self._stopping:
                        return None
                    self._cond.wait()
                    continue
                oldest_at, key = min(ready)
                queue = self._queues[key]
                due = oldest_at + wait - time.monotonic()
                limit = self._max_batch(key)
                if sum(r.rows for r in queue) >= limit or due <= 0 or self._stopping:
                    batch = [queue.popleft()]
                    rows = batch[0].rows
                    while queue and rows + queue[0].rows <= limit:
                        rows += queue[0].rows
                        batch.append(queue.popleft())
                    return key, batch
                self._cond.wait(timeout=due)

    def _run(self) -> None:
        if self.config.intra_op_threads:
            import torch

            # Per thread for OpenMP; also the default of threads that start torch later.
            torch.set_num_threads(self.config.intra_op_threads)
        while True:
            item = self._next_batch()
            if item is None:
                return
            _, batch = item
            self._execute(batch)

    def _execute(self, batch: list[_Request]) -> None:
        loaded = self.slot.current  # once per batch: a swap waits for the next batch
        started = time.monotonic()
        if loaded is None:
            for r in batch:
                r.future.set_exception(RuntimeError("no model is loaded"))
            return
        budget = max(r.params.max_new_tokens for r in batch)
        params = GenerationParams(
            max_new_tokens=budget, temperature=batch[0].params.temperature, top_p=batch[0].params.top_p
        )
        prompts = [r.prompt for r in batch for _ in range(r.rows)]
        budgets = [r.params.max_new_tokens for r in batch for _ in range(r.rows)]
        from .meta_serving import generate_and_read

        try:  # the head reads the states generation computes (no second pass) and is advisory
            results, metas = generate_and_read(
                loaded.model, loaded.tokenizer, loaded.head, prompts, params, budgets=budgets, advisory=True
            )
        except Exception as exc:  # a failed batch fails its requests, never the thread
            for r in batch:
                r.future.set_exception(exc)
            return
        seconds = time.monotonic() - started
        rows = iter(zip(results, metas))
        for r in batch:
            mine = [
                BatchResult(gen, loaded.version_id, len(prompts), 1000 * (started - r.enqueued_at), meta)
                for gen, meta in (next(rows) for _ in range(r.rows))
            ]
            r.future.set_result(mine if r.samples is not None else mine[0])
        if self.on_batch:
            self.on_batch(len(prompts), seconds)
