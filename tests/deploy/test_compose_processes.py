"""A first deploy, as docker/compose.yaml runs it, with local processes instead of containers.

PostgreSQL (a database of its own), a private Redis on port 6391, production settings, and the
file's commands: migrate and register once, web (two gunicorn workers), inference, a worker
and two beats. Requests go straight to the roles with the proxy's X-Forwarded-Proto header
(SECURE_PROXY_SSL_HEADER); the probes speak plain HTTP, as compose's healthchecks do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.deploy import stack

pytestmark = pytest.mark.deploy

REDIS_PORT = 6391
WEB, INFERENCE, WORKER_METRICS = 18801, 18802, 18803
HTTPS = {"X-Forwarded-Proto": "https", "Host": "localhost"}


def _database_url(name: str) -> str:
    parts = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cogloop"))
    return urlunsplit(parts._replace(path=f"/{name}"))


def _fresh_database(name: str) -> str:
    with psycopg.connect(_database_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return _database_url(name)


@pytest.fixture(scope="module")
def deploy(tmp_path_factory):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (.ci/system installs it)")
    base = tmp_path_factory.mktemp("deploy")
    redis = subprocess.Popen(
        ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "", "--dir", str(base)],
        stdout=subprocess.DEVNULL,
    )
    database_url = _fresh_database("cogloop_deploy_stack")
    variables = {
        "SECRET_KEY": stack.SECRET_KEY,
        "POSTGRES_PASSWORD": "unused",
        "DOMAIN": "localhost",
    }
    spec = stack.compose()
    local = {"DATABASE_URL": database_url, "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0"}

    def svc(name, **overrides):
        return stack.service(spec, name, variables, base, **{**local, **overrides})

    started: list[stack.Service] = []
    try:
        stack.wait_for(
            lambda: subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "ping"]).returncode == 0, 10, "redis"
        )
        stack.image_build_static(base / "image-static")
        out = {"migrate": svc("migrate").run_once(timeout=180)}
        out["register"] = svc("register").run_once(timeout=120)
        services = {
            "web": svc("web", GUNICORN_BIND=f"127.0.0.1:{WEB}"),
            "inference": svc("inference", GUNICORN_BIND=f"127.0.0.1:{INFERENCE}", GUNICORN_THREADS="4"),
            "worker": svc("worker", CELERY_METRICS_PORT=str(WORKER_METRICS)),
            # The relay every second, so the test sees the schedule run within seconds.
            "beat": svc("beat", OUTBOX_RELAY_EVERY="1"),
            "beat2": svc("beat", OUTBOX_RELAY_EVERY="1"),
        }
        services["beat2"].log = base / "beat2.log"
        for s in services.values():
            started.append(s.start())
        stack.wait_for(lambda: stack.get(f"http://127.0.0.1:{WEB}/readyz")[0] == 200, 60, "web /readyz")
        stack.wait_for(
            lambda: stack.get(f"http://127.0.0.1:{INFERENCE}/readyz")[0] == 200, 90, "inference /readyz"
        )
        yield {"services": services, "out": out, "base": base, "database_url": database_url, "svc": svc}
    finally:
        for s in started:
            s.stop()
        redis.terminate()
        redis.wait(timeout=10)


def _query(url: str, sql: str, *args):
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


def test_static_files_are_built_with_the_manifest_and_served(deploy):
    for root in ("image-static", "static"):  # the image's (whitenoise) and the proxy's volume
        manifest = json.loads((deploy["base"] / root / "staticfiles.json").read_text())
        assert "cogloop/base.css" in manifest["paths"]
    hashed = manifest["paths"]["cogloop/base.css"]
    status, headers, _ = stack.get(f"http://127.0.0.1:{WEB}/static/{hashed}", HTTPS)
    assert status == 200 and "max-age" in headers.get("Cache-Control", "")


def test_first_boot_registers_the_base_model_once(deploy):
    assert "registered cogloop_tiny-base (active)" in deploy["out"]["register"]
    # The job again (a second `docker compose up`) changes nothing.
    again = deploy["svc"]("register").run_once()
    assert "registry not empty" in again
    rows = _query(deploy["database_url"], "SELECT name, status FROM inference_modelversion")
    assert rows == [("cogloop_tiny-base", "active")]


def test_readiness_per_role(deploy):
    status, headers, body = stack.get(f"http://127.0.0.1:{WEB}/readyz")  # plain HTTP: not redirected
    web = json.loads(body)
    assert status == 200 and web["role"] == "web" and "model" not in web["checks"]
    assert web["checks"]["database"] == "ok" and web["checks"]["redis"] == "ok"
    status, _, body = stack.get(f"http://127.0.0.1:{INFERENCE}/readyz")
    inference = json.loads(body)
    assert status == 200 and inference["role"] == "inference" and inference["checks"]["model"] == "ok"
    # Anything else over plain HTTP is sent to https; through the proxy it is served.
    assert stack.get(f"http://127.0.0.1:{WEB}/accounts/login/")[0] == 301
    assert stack.get(f"http://127.0.0.1:{WEB}/accounts/login/", HTTPS)[0] == 200


def test_generate_feedback_and_capture_through_the_roles(deploy):
    # `docker compose run --rm web python manage.py apikey create APP`: the web service's environment.
    apikey = deploy["svc"]("web")
    apikey.argv = [sys.executable, "manage.py", "apikey", "create", "deploy-test-app"]
    apikey.log = deploy["base"] / "apikey.log"
    apikey.env["PROMETHEUS_MULTIPROC_DIR"] = str(deploy["base"] / "metrics" / "apikey")
    key = apikey.run_once().strip().splitlines()[-1]
    auth = {**HTTPS, "Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    # Generation is the inference role's; the web role refuses it rather than load a model.
    body = json.dumps({"prompt": "Start with 40. Take away 7. What is the result?"}).encode()
    status, headers, answer = stack.get(f"http://127.0.0.1:{INFERENCE}/api/v1/generate", auth, body)
    assert status == 201, answer
    output = json.loads(answer)
    assert output["model_version"] and headers.get("X-Request-ID")
    assert stack.get(f"http://127.0.0.1:{WEB}/api/v1/generate", auth, body)[0] == 503

    # An answer made elsewhere, scored by the web role; a bad rating sends it to review.
    scored = json.dumps(
        {
            "prompt": "Start with 3. Add 4. What is the result?",
            "text": "Step 1 [deduction]: 3 + 4 = 7\n</think>\n7",
        }
    ).encode()
    status, _, reply = stack.get(f"http://127.0.0.1:{WEB}/api/v1/outputs", auth, scored)
    assert status == 201, reply
    scored_id = json.loads(reply)["id"]
    feedback = json.dumps({"output_id": scored_id, "rating": 1, "comment": "wrong"}).encode()
    status, _, reply = stack.get(
        f"http://127.0.0.1:{WEB}/api/v1/feedback", {**auth, "Idempotency-Key": uuid.uuid4().hex}, feedback
    )
    assert status in (200, 201, 202), reply
    # The worker captures it (outbox -> Redis -> worker): a review item for a low rating.
    stack.wait_for(
        lambda: _query(
            deploy["database_url"], "SELECT count(*) FROM feedback_reviewitem WHERE reason = 'low_rating'"
        )[0][0],
        60,
        "the worker to capture the feedback",
    )
    # The worker's own metrics (its processes add up in its multiprocess directory).
    text = stack.wait_for(
        lambda: (
            (t := stack.get(f"http://127.0.0.1:{WORKER_METRICS}/metrics")[2].decode())
            and 'cogloop_captures_total{reason="low_rating"}' in t
            and t
        ),
        30,
        "the capture counter",
    )
    assert re.search(r'cogloop_captures_total\{reason="low_rating"\} [1-9]', text)
    inference_metrics = stack.get(f"http://127.0.0.1:{INFERENCE}/metrics")[2].decode()
    assert re.search(r'cogloop_tokens_total\{kind="completion",source="generated"\} [1-9]', inference_metrics)
    assert "cogloop_generation_queue_wait_seconds_count" in inference_metrics


def test_metrics_add_up_across_two_gunicorn_workers(deploy):
    def count(text: str) -> float:
        m = re.search(
            r'cogloop_http_request_seconds_count\{method="GET",route="healthz",status="200"\} (\S+)', text
        )
        return float(m.group(1)) if m else 0.0

    before = count(stack.get(f"http://127.0.0.1:{WEB}/metrics")[2].decode())
    for _ in range(40):
        assert stack.get(f"http://127.0.0.1:{WEB}/healthz", {"Connection": "close"})[0] == 200
    text = stack.get(f"http://127.0.0.1:{WEB}/metrics")[2].decode()
    assert count(text) == before + 40
    workers = {str(pid) for pid in stack.children(deploy["services"]["web"].proc.pid)}
    pids = {p.stem.split("_")[-1] for p in (deploy["base"] / "metrics" / "web").glob("histogram_*.db")}
    assert len(workers) == 2 and workers <= pids, (workers, pids)  # both workers served and wrote samples
    # The proxy does not route /metrics; over plain HTTP inside the network it answers.
    assert stack.get(f"http://127.0.0.1:{WEB}/metrics")[0] == 200


def test_two_beats_send_the_schedule_once(deploy):
    beats = [deploy["services"]["beat"], deploy["services"]["beat2"]]
    stack.wait_for(
        lambda: any("Sending due task" in line for b in beats for line in b.lines()), 30, "a beat to send"
    )
    time.sleep(3)
    sending = [b for b in beats if any("Sending due task" in line for line in b.lines())]
    waiting = [b for b in beats if any("another beat holds the beat lock" in line for line in b.lines())]
    assert len(sending) == 1 and len(waiting) == 1 and sending[0] is not waiting[0]
    assert all(b.proc.poll() is None for b in beats)  # the second waits, it does not exit


def test_web_role_holds_no_model(deploy):
    web = deploy["services"]["web"]
    pids = [web.proc.pid, *stack.children(web.proc.pid)]
    assert len(pids) == 3  # the master and two workers
    for pid in pids:
        assert stack.rss_mb(pid) < 300, (pid, stack.rss_mb(pid))
        assert "libtorch" not in Path(f"/proc/{pid}/maps").read_text()


def test_every_line_the_processes_write_is_json_with_ids(deploy):
    services = deploy["services"]
    for name in ("web", "inference", "worker", "beat"):
        lines = [line for line in services[name].lines() if line.strip()]
        assert lines, name
        for line in lines:
            try:
                json.loads(line)
            except ValueError:
                pytest.fail(f"{name} wrote a line that is not JSON: {line[:300]}")
    access = [json.loads(line) for line in services["web"].lines() if '"gunicorn.access"' in line]
    assert access and all(entry.get("request_id") for entry in access)
    tasks = [json.loads(line) for line in services["worker"].lines() if '"task_id"' in line]
    assert tasks, "no worker line carried a task id"


def test_a_killed_beat_hands_the_schedule_to_the_waiting_one(deploy):
    """Last in the module: it kills a beat. SIGKILL leaves no chance to clean up; the lock goes
    with the killed process's connection and the waiting beat takes it within seconds."""
    beats = [deploy["services"]["beat"], deploy["services"]["beat2"]]
    sender = next(b for b in beats if any("Sending due task" in line for line in b.lines()))
    waiter = next(b for b in beats if b is not sender)
    os.killpg(sender.proc.pid, signal.SIGKILL)
    sender.proc.wait(timeout=10)
    stack.wait_for(
        lambda: any("holding the beat lock" in line for line in waiter.lines()),
        30,
        "the waiting beat to take over",
    )
    stack.wait_for(
        lambda: any("Sending due task" in line for line in waiter.lines()),
        30,
        "the new beat to send the schedule",
    )
    assert waiter.proc.poll() is None
