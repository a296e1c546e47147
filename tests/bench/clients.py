"""Concurrent client threads for the benchmarks: throughput and latency percentiles."""

from __future__ import annotations

import statistics
import threading
import time


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]


def run_clients(clients: int, per_client: int, make_client) -> dict:
    """``clients`` threads, each making ``per_client`` requests with ``make_client(c)(i)``, which
    raises when a request fails. Returns ok, failed, seconds, rps, p50 and p99 (ms)."""
    latencies, failures = [], []
    lock = threading.Lock()

    def client(c):
        one = make_client(c)
        for i in range(per_client):
            t = time.perf_counter()
            try:
                one(i)
            except Exception as exc:  # counted, not raised
                with lock:
                    failures.append(repr(exc))
                continue
            with lock:
                latencies.append(time.perf_counter() - t)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {
        "ok": len(latencies),
        "failed": len(failures),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50": 1000 * statistics.median(latencies),
        "p99": 1000 * percentile(latencies, 0.99),
    }
