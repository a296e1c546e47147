"""Feedback and output ingestion on PostgreSQL behind gunicorn, against PostgreSQL COPY of the
same rows.

    python tests/bench/bench_feedback.py [--single 2000] [--bulk-requests 10] [--concurrency 8]
        [--before /tmp/ingest-before]

Uses its own database (cogloop_bench, recreated) and Redis db 14, starts gunicorn on a
free port, and prints one table: single feedback and single outputs (requests/s, p50/p99),
bulk feedback items/s, COPY rows/s, and the COPY/bulk ratio. While the code under test runs,
the outbox relay runs beside it as the beat runs it (cogloop.outbox.outbox_relay_loop), where
that code has one: it takes its share of the same cores.

``--before DIR`` measures an older checkout of the code in the same run (e.g. made with
``git worktree add /tmp/ingest-before <commit>``): its server runs from DIR with this
interpreter, on a database of its own (cogloop_bench_before), before this checkout's, and the
table shows both side by side with their ratio.
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

PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
GOOD = "Step 1 [deduction]: 3 + 4 = 7\n</think>\n\nThe answer is 7."


def make_env(db: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": f"{PG}/{db}",
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
        "COGLOOP_VAR_DIR": str(ROOT / "var" / "bench"),
        "API_KEY_RATE": "1000000/min",
        "DJANGO_SETTINGS_MODULE": "cogloop.settings",
    }


# The code under test: its checkout and its database (main() sets them for each run).
CODE = ROOT
DB = "cogloop_bench"
ENV = make_env(DB)


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, cwd=CODE, env=ENV, **kw)


def setup(n_outputs: int) -> tuple[str, list[str]]:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    sh(sys.executable, "manage.py", "migrate", "--noinput", "-v", "0")
    sh(sys.executable, "-c", "import redis, os; redis.Redis.from_url(os.environ['REDIS_URL']).flushdb()")
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
        cwd=CODE,
        env={**ENV, "MODEL_WATCH_INTERVAL": "0"},
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start")


RELAY = (
    "import django, threading; django.setup()\n"
    "from cogloop import outbox\n"
    "if hasattr(outbox, 'outbox_relay_loop'):\n"
    "    outbox.outbox_relay_loop(stop=threading.Event())\n"
)


def start_relay() -> subprocess.Popen:
    """The beat's relay thread, alone in a process (the code under test's, if it has one)."""
    return subprocess.Popen([sys.executable, "-c", RELAY], cwd=CODE, env=ENV)


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


def bench_outputs(port, key, total, concurrency):
    """POST /api/v1/outputs: one answer made elsewhere, parsed, scored and stored."""
    per = total // concurrency

    def make_client(c):
        conn = http.client.HTTPConnection("127.0.0.1", port)

        def one(i):
            status, payload = post(
                conn,
                "/api/v1/outputs",
                {
                    "prompt": f"Start with {c * per + i}. Add 4. What is the result?",
                    "text": GOOD,
                    "idempotency_key": str(uuid.uuid4()),
                },
                key,
            )
            if status != 201:
                raise RuntimeError(f"{status}: {payload[:200]!r}")

        return one

    return run_clients(concurrency, per, make_client)


def bench_bulk(port, key, outputs, requests, size):
    """Bulk requests one after another; their bodies are made before the clock starts (the
    client's work is not the server's), as bench_copy makes its rows."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    bodies = [
        {
            "items": [
                {
                    "output_id": outputs[(r * size + i) % len(outputs)],
                    "thumb": "down" if i % 2 else "up",
                    "comment": "bulk",
                    "idempotency_key": str(uuid.uuid4()),
                }
                for i in range(size)
            ]
        }
        for r in range(requests)
    ]
    items_done, started = 0, time.perf_counter()
    for body in bodies:
        status, payload = post(conn, "/api/v1/feedback/bulk", body, key)
        assert status == 200, payload[:300]
        items_done += json.loads(payload)["created"]
    elapsed = time.perf_counter() - started
    return {"items": items_done, "seconds": elapsed, "items_per_s": items_done / elapsed}


def bench_copy(rows: int):
    """The physical limit: COPY the same shape of rows straight into the feedback table, in one
    transaction, from rows made before the clock starts. Its CPU: this process's (psycopg)
    and its backend's."""
    import psycopg

    with psycopg.connect(f"{PG}/{DB}") as conn:
        (app_id,) = conn.execute("SELECT id FROM inference_productapp WHERE name='bench'").fetchone()
        ids = [r[0] for r in conn.execute("SELECT id FROM inference_output ORDER BY id").fetchall()]
        conn.commit()
        data = [
            (ids[i % len(ids)], app_id, None, bool(i % 2), "bulk", "[]", str(uuid.uuid4()), "0" * 64, "now")
            for i in range(rows)
        ]
        backend = conn.info.backend_pid
        cpu_before = time.process_time() + _cpu_s(backend)
        started = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy(
                "COPY feedback_feedback (output_id, app_id, rating, thumb, comment, flags, idempotency_key,"
                " request_hash, created_at) FROM STDIN"
            ) as copy:
                for row in data:
                    copy.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() + _cpu_s(backend) - cpu_before
    return {"rows": rows, "seconds": elapsed, "rows_per_s": rows / elapsed, "cpu_s": cpu}


TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def _server_pids(server: subprocess.Popen, relay: subprocess.Popen) -> dict[str, list[int]]:
    """gunicorn's workers, the relay, and the PostgreSQL backends serving this database."""
    import psycopg

    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        backends = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'", [DB]
        ).fetchall()
    return {
        "server": [server.pid, *map(int, children)],
        "relay": [relay.pid],
        "database": [pid for (pid,) in backends],
    }


class CpuMeter:
    """CPU seconds the server, the relay and the database spent between start() and stop():
    on a machine shared with other work, a steadier figure than requests/s."""

    def __init__(self, server, relay):
        self.server, self.relay = server, relay

    def start(self):
        self.before = {
            pid: _cpu_s(pid) for pids in _server_pids(self.server, self.relay).values() for pid in pids
        }

    def stop(self) -> dict[str, float]:
        pids = _server_pids(self.server, self.relay)
        return {
            part: sum(_cpu_s(pid) - self.before.get(pid, 0.0) for pid in group)
            for part, group in pids.items()
        }


def measure(code: Path, db: str, args) -> dict:
    """Every measurement of one checkout of the code, on its own database."""
    global CODE, DB, ENV
    CODE, DB, ENV = code, db, make_env(db)
    key, outputs = setup(2000)
    port = free_port()
    server = start_gunicorn(port, args.workers)
    relay = start_relay()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for out in outputs[:20]:  # warm-up: every worker thread connected, the key read
            post(conn, "/api/v1/feedback", {"output_id": out, "rating": 3}, key)
        meter = CpuMeter(server, relay)
        meter.start()
        single = bench_single(port, key, outputs, args.single, args.concurrency)
        single["cpu"] = meter.stop()
        meter.start()
        outs = bench_outputs(port, key, args.single, args.concurrency)
        outs["cpu"] = meter.stop()
        meter.start()
        bulk = bench_bulk(port, key, outputs, args.bulk_requests, args.bulk_size)
        bulk["cpu"] = meter.stop()
    finally:
        for proc in (relay, server):
            proc.terminate()
            proc.wait()
    copy = bench_copy(bulk["items"])
    return {"single": single, "outputs": outs, "bulk": bulk, "copy": copy}


def rows(r: dict, bulk_size: int) -> list[tuple[str, str, float | None]]:
    """(measurement, result, the number a ratio compares: higher is better)."""

    def req(m):
        return (
            f"{m['rps']:.0f} requests/s, p50 {m['p50']:.1f} ms, p99 {m['p99']:.1f} ms "
            f"({m['ok']} ok, {m['failed']} failed)"
        )

    def cpu(m, n):
        c = m["cpu"]
        total = sum(c.values())
        return (
            f"{1000 * total / n:.2f} ms (server {1000 * c['server'] / n:.2f}, database "
            f"{1000 * c['database'] / n:.2f}, relay {1000 * c['relay'] / n:.2f})",
            n / total if total else None,
        )

    single_cpu = cpu(r["single"], r["single"]["ok"])
    outputs_cpu = cpu(r["outputs"], r["outputs"]["ok"])
    bulk_cpu = cpu(r["bulk"], r["bulk"]["items"] / 1000)

    copy_ratio = r["copy"]["rows_per_s"] / r["bulk"]["items_per_s"]
    bulk_cpu_per_row = sum(r["bulk"]["cpu"].values()) / r["bulk"]["items"]
    cpu_ratio = bulk_cpu_per_row / (r["copy"]["cpu_s"] / r["copy"]["rows"])
    return [
        ("single POST /api/v1/feedback", req(r["single"]), r["single"]["rps"]),
        ("CPU per single feedback (fewer is better; ratio: requests per CPU second)", *single_cpu),
        ("single POST /api/v1/outputs", req(r["outputs"]), r["outputs"]["rps"]),
        ("CPU per single output", *outputs_cpu),
        (
            f"bulk POST /api/v1/feedback/bulk ({bulk_size} items/request)",
            f"{r['bulk']['items_per_s']:.0f} items/s",
            r["bulk"]["items_per_s"],
        ),
        ("CPU per 1000 bulk items", *bulk_cpu),
        (
            f"PostgreSQL COPY of the same {r['copy']['rows']} rows",
            f"{r['copy']['rows_per_s']:.0f} rows/s",
            None,
        ),
        (
            "CPU per 1000 rows of the COPY (client and backend)",
            f"{1000 * 1000 * r['copy']['cpu_s'] / r['copy']['rows']:.2f} ms",
            None,
        ),
        ("COPY / bulk", f"{copy_ratio:.1f}x", 1 / copy_ratio),
        ("COPY / bulk, in CPU per row", f"{cpu_ratio:.1f}x", 1 / cpu_ratio),
        (
            "bulk / single feedback (items/s)",
            f"{r['bulk']['items_per_s'] / r['single']['rps']:.1f}x",
            None,
        ),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--single", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--bulk-requests", type=int, default=10)
    ap.add_argument("--bulk-size", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--before", type=Path, help="a checkout of the older code to measure first")
    args = ap.parse_args()
    runs = {}
    if args.before:
        runs["before"] = measure(args.before.resolve(), "cogloop_bench_before", args)
    runs["after" if args.before else "result"] = measure(ROOT, "cogloop_bench", args)
    load = os.getloadavg()
    print(
        f"gunicorn {args.workers} workers x 4 threads, {args.concurrency} client connections, PostgreSQL,"
        f" Redis; {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} after the run"
    )
    tables = {name: rows(r, args.bulk_size) for name, r in runs.items()}
    if not args.before:
        print("| measurement | result |")
        print("|---|---|")
        for name, result, _ in tables["result"]:
            print(f"| {name} | {result} |")
        return
    print("| measurement | before | after | after / before |")
    print("|---|---|---|---|")
    for (name, before, b), (_, after, a) in zip(tables["before"], tables["after"]):
        ratio = f"{a / b:.2f}x" if a is not None and b else ""
        print(f"| {name} | {before} | {after} | {ratio} |")


if __name__ == "__main__":
    main()
