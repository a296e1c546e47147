"""Fault tests: real components, broken on purpose. Each test starts what it breaks (a Redis of
its own, a worker of its own) and never touches the shared Redis or PostgreSQL servers; a
database fault is a ``pg_terminate_backend`` of a connection the test itself opened.

Every test records its figures (sent / acknowledged / persisted / captured / lost) with
``record``; docs/reliability.md holds the table they produce."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD = "Step 1 [deduction]: 3 + 4 = 7\n</think>\n\nThe answer is 7."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shipped_redis_flags() -> list[str]:
    """The persistence flags docker/compose.yaml gives redis-server (its --dir is the test's)."""
    compose = (ROOT / "docker" / "compose.yaml").read_text()
    match = re.search(r"^\s*command:\s*redis-server(.*)$", compose, re.MULTILINE)
    flags = match.group(1).split() if match else []
    out, skip = [], False
    for flag in flags:
        if skip:
            skip = False
            continue
        if flag == "--dir":
            skip = True
            continue
        out.append(flag)
    return out


class PrivateRedis:
    """A redis-server of this test's own: stopping, killing or flushing it disturbs nobody."""

    def __init__(self, data_dir: Path, flags: list[str]):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir, self.flags, self.proc = data_dir, flags, None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + self.flags
            + ["--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True)
            if ping.stdout.strip() == b"PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self, *, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            self.proc.wait(timeout=10)

    def cli(self, *args: str) -> str:
        return subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True
        ).stdout.strip()


def _redis(tmp_path, flags):
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is needed for the fault tests (.ci/run installs it)")
    server = PrivateRedis(tmp_path, flags)
    server.start()
    return server


@pytest.fixture
def private_redis(tmp_path):
    """A Redis started with the shipped persistence flags (docker/compose.yaml)."""
    server = _redis(tmp_path, shipped_redis_flags())
    yield server
    server.stop()


@pytest.fixture
def redis_backed(private_redis, settings):
    """This process's cache, broker and readiness check all on the private Redis."""
    from cogloop.celery import app

    settings.REDIS_URL = private_redis.url
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": private_redis.url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    old = app.conf.broker_url
    app.conf.broker_url = private_redis.url
    app._pool = None
    app.amqp._producer_pool = None
    yield private_redis
    app.conf.broker_url = old
    app._pool = None
    app.amqp._producer_pool = None


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return predicate()


FIGURES = ROOT / "var" / "fault-figures.jsonl"


@pytest.fixture
def record(request):
    """Write one fault's figures (appended to var/fault-figures.jsonl for docs/reliability.md)."""

    def write(**figures):
        figures["lost"] = figures["acknowledged"] - figures["captured"]
        FIGURES.parent.mkdir(parents=True, exist_ok=True)
        with FIGURES.open("a") as out:
            out.write(json.dumps({"test": request.node.name, **figures}) + "\n")
        return figures

    return write


def post_feedback(api_client, api_key, output, *, rating=1, key=None):
    headers = {"Authorization": f"Bearer {api_key}"}
    if key:
        headers["Idempotency-Key"] = key
    return api_client.post(
        "/api/v1/feedback",
        data=json.dumps({"output_id": str(output.uuid), "rating": rating}),
        content_type="application/json",
        headers=headers,
    )


def make_outputs(app, n: int, tag: str = ""):
    from inference import services

    return [
        services.output_create(
            app=app, prompt=f"{tag}Start with {i}. Add 4. What is the result?", raw_text=GOOD
        )
        for i in range(n)
    ]
