"""Feedback ingestion on PostgreSQL behind gunicorn, against PostgreSQL COPY of the same rows.

    python tests/bench/bench_feedback.py [--single 2000] [--bulk-requests 10] [--concurrency 8]

Uses its own database (cogloop_bench, recreated) and Redis db 14, starts gunicorn on a
free port, and prints one table: single-item requests/s with p50/p99, bulk items/s, COPY
rows/s, and the bulk/COPY ratio. Everything is measured in this one run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.clients import run_clients  # noqa: E402

DB = "cogloop_bench"
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
ENV = {
    **os.environ,
    "DATABASE_URL": f"{PG}/{DB}",
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
    "COGLOOP_VAR_DIR": str(ROOT / "var" / "bench"),
    "API_KEY_RATE": "1000000/min",
    "DJANGO_SETTINGS_MODULE": "cogloop.settings",
}


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, cwd=ROOT, env=ENV, **kw)


def setup(n_outputs: int) -> tuple[str, list[str]]:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    sh(sys.executable, "manage.py", "migrate", "--noinput", "-v", "0")
    code = (
        "import django, json; django.setup()\n"
        "from inference.models import Output, ProductApp\n"
        "from inference.services import api_key_create\n"
        "app = ProductApp.objects.create(name='bench')\n"
        "_, key = api_key_create(app=app, name='bench')\n"
        f"outs = Output.objects.bulk_create([Output(app=app, prompt=f'p{{i}}', raw_text='x', cognition_score=0.9,"
        f" consistency=1, adaptability=0.5) for i in range({n_outputs})])\n"
        "print(json.dumps({'key': key, 'outputs': [str(o.uuid) for o in Output.objects.all()]}))\n"
    )
    out = sh(sys.executable, "-c", code, capture_output=True, text=True).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return data["key"], data["outputs"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(port: int, workers: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "cogloop.wsgi:application",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(workers),
            "--threads",
            "4",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**ENV, "MODEL_WATCH_INTERVAL": "0"},
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start")


def post(conn, path, body, key):
    conn.request(
        "POST",
        path,
        body=json.dumps(body),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    r = conn.getresponse()
    payload = r.read()
    return r.status, payload


def bench_single(port, key, outputs, total, concurrency):
    per = total // concurrency

    def make_client(c):
        conn = http.client.HTTPConnection("127.0.0.1", port)

        def one(i):
            out = outputs[(c * per + i) % len(outputs)]
            status, payload = post(
                conn,
                "/api/v1/feedback",
                {"output_id": out, "rating": 1 + i % 5, "idempotency_key": str(uuid.uuid4())},
                key,
            )
            if status != 201:
                raise RuntimeError(f"{status}: {payload[:200]!r}")

        return one

    return run_clients(concurrency, per, make_client)


def bench_bulk(port, key, outputs, requests, size):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    items_done, started = 0, time.perf_counter()
    for r in range(requests):
        items = [
            {
                "output_id": outputs[(r * size + i) % len(outputs)],
                "thumb": "down" if i % 2 else "up",
                "comment": "bulk",
                "idempotency_key": str(uuid.uuid4()),
            }
            for i in range(size)
        ]
        status, payload = post(conn, "/api/v1/feedback/bulk", {"items": items}, key)
        assert status == 200, payload[:300]
        items_done += json.loads(payload)["created"]
    elapsed = time.perf_counter() - started
    return {"items": items_done, "seconds": elapsed, "items_per_s": items_done / elapsed}


def bench_copy(rows: int):
    """The physical limit: COPY the same shape of rows straight into the feedback table."""
    import psycopg

    with psycopg.connect(f"{PG}/{DB}") as conn:
        (app_id,) = conn.execute("SELECT id FROM inference_productapp WHERE name='bench'").fetchone()
        ids = [r[0] for r in conn.execute("SELECT id FROM inference_output ORDER BY id").fetchall()]
        started = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy(
                "COPY feedback_feedback (output_id, app_id, rating, thumb, comment, flags, idempotency_key,"
                " request_hash, created_at) FROM STDIN"
            ) as copy:
                for i in range(rows):
                    copy.write_row(
                        (
                            ids[i % len(ids)],
                            app_id,
                            None,
                            bool(i % 2),
                            "bulk",
                            "[]",
                            str(uuid.uuid4()),
                            "0" * 64,
                            "now",
                        )
                    )
        conn.commit()
        elapsed = time.perf_counter() - started
    return {"rows": rows, "seconds": elapsed, "rows_per_s": rows / elapsed}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--single", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--bulk-requests", type=int, default=10)
    ap.add_argument("--bulk-size", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    key, outputs = setup(2000)
    port = free_port()
    server = start_gunicorn(port, args.workers)
    try:
        post(
            http.client.HTTPConnection("127.0.0.1", port),
            "/api/v1/feedback",
            {"output_id": outputs[0], "rating": 3},
            key,
        )  # warm-up
        single = bench_single(port, key, outputs, args.single, args.concurrency)
        bulk = bench_bulk(port, key, outputs, args.bulk_requests, args.bulk_size)
    finally:
        server.terminate()
        server.wait()
    copy = bench_copy(bulk["items"])
    print(
        f"gunicorn {args.workers} workers x 4 threads, {args.concurrency} client connections, PostgreSQL, Redis relay"
    )
    print("| measurement | result |")
    print("|---|---|")
    print(
        f"| single-item POST /api/v1/feedback | {single['rps']:.0f} requests/s, p50 {single['p50']:.1f} ms, "
        f"p99 {single['p99']:.1f} ms ({single['ok']} ok, {single['failed']} failed) |"
    )
    print(
        f"| bulk POST /api/v1/feedback/bulk ({args.bulk_size} items/request) | {bulk['items_per_s']:.0f} items/s |"
    )
    print(f"| PostgreSQL COPY of the same {copy['rows']} rows | {copy['rows_per_s']:.0f} rows/s |")
    print(f"| COPY / bulk | {copy['rows_per_s'] / bulk['items_per_s']:.1f}x |")
    print(f"| bulk / single-item (items/s) | {bulk['items_per_s'] / single['rps']:.1f}x |")


if __name__ == "__main__":
    main()
