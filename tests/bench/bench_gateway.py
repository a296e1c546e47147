"""What the OpenAI-compatible gateway adds to a request, against its service path called directly.

    python tests/bench/bench_gateway.py [--rounds 200] [--max-tokens 8]

One process, cogloop-tiny through the real batcher, greedy, a short fixed ``max_tokens``, one
request at a time. Each round asks one prompt every way, in a shuffled order, so a change in
the machine's load falls on all of them:

- service: ``services.chat_completion_create`` called directly (generation, scoring, storage)
- gateway: ``POST /v1/chat/completions`` through Django's full stack in process (middleware,
  API-key authentication, throttle, validation, the response's JSON), no network
- gateway, stream: the same with ``stream: true``, every event read
- /api/v1/generate through the same stack, for reference
- the service and the gateway with n = 3 (a sample group, temperature 0.6)
- the parts of what the gateway adds, each alone: the API key's lookup, the throttle's cache
  round trips (both shared with every /api/v1 endpoint), and the gateway's own code

"added" is the median (and p99) of each round's difference from the service path of the same
n, which cancels most of generation's noise; CPU is the calling thread's own time per request
(generation runs on the batcher's thread), the part of the cost that the machine's load does
not inflate. Uses its own database (cogloop_bench_gateway, recreated) and Redis db 13.
Prints markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

DB = "cogloop_bench_gateway"
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
os.environ.update(
    {
        "DATABASE_URL": f"{PG}/{DB}",
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
        "COGLOOP_VAR_DIR": str(ROOT / "var" / "bench-gateway"),
        "API_KEY_RATE": "1000000/min",
        "DJANGO_SETTINGS_MODULE": "cogloop.settings",
    }
)

from tests.bench.clients import percentile  # noqa: E402


def setup():
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    from inference import services
    from inference.models import ProductApp

    app = ProductApp.objects.create(name="bench")
    _, key = services.api_key_create(app=app, name="bench")
    return app, key, services.model_version_ensure_base()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=8)
    args = parser.parse_args()
    app, key, base = setup()

    from django.test import Client

    from inference import services
    from inference.engine import workload

    client = Client(HTTP_HOST="localhost")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    T = args.max_tokens

    def post(path: str, body: dict):
        return client.post(path, data=json.dumps(body), content_type="application/json", **auth)

    last: dict = {}

    def service(prompt: str, n: int = 1):
        temperature = 0.6 if n > 1 else 0.0
        last["completion"] = services.chat_completion_create(
            app=app, prompt=prompt, n=n, max_new_tokens=T, temperature=temperature, top_p=0.95
        )

    # The parts of what the gateway adds, each timed alone in the same rounds.
    from types import SimpleNamespace

    from inference import gateway as gateway_module
    from inference.api import ApiKeyRateThrottle

    key_row = services.api_key_authenticate(raw=key)

    def key_lookup():
        assert services.api_key_authenticate(raw=key) is not None

    def throttle():
        assert ApiKeyRateThrottle().allow_request(SimpleNamespace(auth=key_row), None)

    def own_work(prompt: str):
        body = {"model": "cogloop", "messages": [{"role": "user", "content": prompt}], "max_tokens": T}
        data = gateway_module.ChatCompletionInputSerializer(data=body)
        assert data.is_valid()
        services.chat_model_resolve(name="cogloop")
        json.dumps(gateway_module.completion_body(last["completion"], "cogloop"))

    parts = {
        "API key lookup (one query)": lambda p: key_lookup(),
        "throttle (cache get + set)": lambda p: throttle(),
        "the gateway's own code: validation, model check, response JSON": own_work,
    }

    def gateway(prompt: str, n: int = 1, stream: bool = False):
        body = {
            "model": "cogloop",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": T,
            "n": n,
        }
        if n > 1:
            body["temperature"] = 0.6
        if stream:
            body["stream"] = True
        r = post("/v1/chat/completions", body)
        assert r.status_code == 200, r.content
        if stream:
            assert b"".join(r.streaming_content).endswith(b"data: [DONE]\n\n")

    def generate(prompt: str):
        r = post("/api/v1/generate", {"prompt": prompt, "max_new_tokens": T, "n": 1})
        assert r.status_code == 201, r.content

    modes = {
        "service (n = 1)": (lambda p: service(p), "service (n = 1)"),
        "gateway (n = 1)": (lambda p: gateway(p), "service (n = 1)"),
        "gateway, stream (n = 1)": (lambda p: gateway(p, stream=True), "service (n = 1)"),
        "/api/v1/generate (n = 1)": (generate, "service (n = 1)"),
        "service (n = 3)": (lambda p: service(p, 3), "service (n = 3)"),
        "gateway (n = 3)": (lambda p: gateway(p, 3), "service (n = 3)"),
    }
    prompts = [p.prompt for p in workload.problems(args.rounds + 10, seed=11, split="eval")]
    for prompt in prompts[:10]:  # warm-up: the model loads, connections open, caches fill
        for run, _ in modes.values():
            run(prompt)
    wall: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    order = list(modes)
    rng = random.Random(0)
    load_before = os.getloadavg()[0]
    part_wall: dict[str, list[float]] = {m: [] for m in parts}
    for prompt in prompts[10:]:
        rng.shuffle(order)
        for mode in order:
            started, started_cpu = time.perf_counter(), time.thread_time()
            modes[mode][0](prompt)
            cpu[mode].append(1000 * (time.thread_time() - started_cpu))
            wall[mode].append(1000 * (time.perf_counter() - started))
        for part, run in parts.items():
            started = time.perf_counter()
            run(prompt)
            part_wall[part].append(1000 * (time.perf_counter() - started))
    load_after = os.getloadavg()[0]

    print(
        f"cogloop-tiny, greedy (n = 3: temperature 0.6), max_tokens {T}, one request at a time, "
        f"{args.rounds} rounds, {os.cpu_count()} CPU cores, load average {load_before:.1f} -> {load_after:.1f}"
    )
    print("| path | p50 ms | p99 ms | added p50 ms | added p99 ms | CPU ms/request | added CPU ms |")
    print("|---|---|---|---|---|---|---|")
    for mode, (_, reference) in modes.items():
        added = [a - b for a, b in zip(wall[mode], wall[reference])]
        added_cpu = statistics.median(cpu[mode]) - statistics.median(cpu[reference])
        same = mode == reference
        print(
            f"| {mode} | {statistics.median(wall[mode]):.1f} | {percentile(wall[mode], 0.99):.1f} | "
            f"{'—' if same else f'{statistics.median(added):+.1f}'} | "
            f"{'—' if same else f'{percentile(added, 0.99):+.1f}'} | "
            f"{statistics.median(cpu[mode]):.1f} | {'—' if same else f'{added_cpu:+.1f}'} |"
        )
    print("\n| part of what the gateway adds, timed alone | p50 ms | p99 ms |\n|---|---|---|")
    for part, values in part_wall.items():
        print(f"| {part} | {statistics.median(values):.2f} | {percentile(values, 0.99):.2f} |")
    from inference.models import Output

    print(f"\nOutputs stored: {Output.objects.count()} (every request, every path)")


if __name__ == "__main__":
    main()
