"""PostgreSQL itself goes away and comes back: a private server of this test's own, stopped and
started under the shipped web, worker and beat commands (docker/compose.yaml, run as local
processes by tests/deploy/stack.py with the production settings).

While the server is down the API answers its JSON error shape (503 ``unavailable`` with
``Retry-After``) and ``/readyz`` says not ready; when it is back every process carries on
by itself: nothing acknowledged is lost and every low rating is captured, with no restart."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.deploy import stack

from .conftest import PrivateRedis, free_port, shipped_redis_flags

pytestmark = pytest.mark.faults

HTTPS = {"X-Forwarded-Proto": "https", "Host": "localhost"}


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not candidates:
        pytest.fail(f"{name} is needed for the PostgreSQL restart test (.ci/system installs PostgreSQL)")
    return str(candidates[-1])


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own (initdb in a temporary directory, its own port):
    stopping it disturbs no other test. As root the server runs as the ``postgres`` user."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cogloop-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, *argv: str) -> None:
        result = subprocess.run([*self.as_user, *argv], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{argv[0]} failed:\n{result.stdout}\n{result.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            _pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self, keep_log: Path) -> None:
        if (self.root / "log").exists():
            shutil.copy(self.root / "log", keep_log)
        subprocess.run(
            [*self.as_user, _pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def restartable_stack(tmp_path):
    postgres = PrivatePostgres()
    postgres.start()
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE cogloop")
    redis = PrivateRedis(tmp_path, shipped_redis_flags())
    redis.start()
    web_port = free_port()
    variables = {"SECRET_KEY": stack.SECRET_KEY, "POSTGRES_PASSWORD": "unused", "DOMAIN": "localhost"}
    local = {"DATABASE_URL": postgres.url("cogloop"), "REDIS_URL": redis.url, "CONN_MAX_AGE": "60"}
    spec = stack.compose()

    def svc(name, **overrides):
        return stack.service(spec, name, variables, tmp_path, **{**local, **overrides})

    started: list[stack.Service] = []
    try:
        stack.image_build_static(tmp_path / "image-static")
        svc("migrate").run_once(timeout=300)
        apikey = svc("web")
        apikey.argv = [sys.executable, "manage.py", "apikey", "create", "restart-test-app"]
        apikey.log = tmp_path / "apikey.log"
        apikey.env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics" / "apikey")
        key = apikey.run_once().strip().splitlines()[-1]
        for s in (
            svc("web", GUNICORN_BIND=f"127.0.0.1:{web_port}", GUNICORN_WORKERS="1"),
            svc("worker"),
            svc("beat", OUTBOX_RELAY_EVERY="1"),
        ):
            started.append(s.start())
        base = f"http://127.0.0.1:{web_port}"
        stack.wait_for(lambda: stack.get(f"{base}/readyz")[0] == 200, 90, "web /readyz")
        yield {"postgres": postgres, "base": base, "key": key, "services": started}
    finally:
        for s in started:
            s.stop()
        redis.stop()
        postgres.remove(keep_log=tmp_path / "postgres.log")


def _post(base: str, key: str, path: str, payload: dict, idempotency_key: str | None = None):
    headers = {**HTTPS, "Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return stack.get(f"{base}{path}", headers, json.dumps(payload).encode())


def _count(postgres: PrivatePostgres, sql: str) -> int:
    with psycopg.connect(postgres.url("cogloop")) as conn:
        return conn.execute(sql).fetchone()[0]


def test_a_postgresql_restart_answers_json_503_then_recovers_and_loses_nothing(restartable_stack, record):
    postgres, base, key = restartable_stack["postgres"], restartable_stack["base"], restartable_stack["key"]
    outputs = []
    for i in range(15):
        status, _, body = _post(
            base,
            key,
            "/api/v1/outputs",
            {
                "prompt": f"Start with {i}. Add 4. What is the result?",
                "text": f"{i} + 4 = {i + 4}\n</think>\n{i + 4}",
            },
        )
        assert status == 201, body
        outputs.append(json.loads(body)["id"])
    feedback = [({"output_id": o, "rating": 1, "comment": "wrong"}, uuid.uuid4().hex) for o in outputs]

    answers: dict[str, int] = {}

    def send(items):
        for payload, idem in items:
            status, headers, body = _post(base, key, "/api/v1/feedback", payload, idem)
            answers[idem] = status
            yield status, headers, body

    before = [s for s, _, _ in send(feedback[:5])]
    assert before == [201] * 5

    web, worker, beat = restartable_stack["services"]
    stack.wait_for(
        lambda: any("holding the beat lock" in line for line in beat.lines()), 60, "the beat's lock"
    )
    stack.wait_for(lambda: any("ready" in line for line in worker.lines()), 60, "the worker")

    postgres.stop()
    time.sleep(2)  # down long enough for every process to notice
    during = list(send(feedback[5:10]))
    ready_status, _, ready_body = stack.get(f"{base}/readyz")
    output_status, output_headers, output_body = _post(
        base, key, "/api/v1/outputs", {"prompt": "Start with 1. Add 1.", "text": "1 + 1 = 2\n</think>\n2"}
    )
    for status, headers, body in [*during, (output_status, output_headers, output_body)]:
        assert status == 503, body
        assert headers.get("Content-Type", "").startswith("application/json")
        assert json.loads(body)["error"]["code"] == "unavailable"
        assert headers.get("Retry-After")
    assert ready_status == 503 and json.loads(ready_body)["ready"] is False

    postgres.start()
    stack.wait_for(lambda: stack.get(f"{base}/readyz")[0] == 200, 60, "web /readyz after the restart")
    after = [s for s, _, _ in send(feedback[10:])]
    assert after == [201] * 5
    # The client retries what was refused, with the same Idempotency-Key, as Retry-After says.
    retried = [s for s, _, _ in send(feedback[5:10])]
    assert retried == [201] * 5

    for s in (web, worker):
        assert s.proc.poll() is None, f"{s.name} exited during the outage:\n" + "\n".join(s.lines()[-30:])
    # The beat's lock went with its connection: it stops rather than risk a second sender, and
    # the restart policy (compose's `unless-stopped`) starts it again, waiting for the lock.
    stack.wait_for(lambda: beat.proc.poll() is not None, 60, "the beat to notice its lock is gone")
    assert any("lost the beat lock's database connection" in line for line in beat.lines())
    beat.start()
    stack.wait_for(
        lambda: sum("holding the beat lock" in line for line in beat.lines()) >= 2,
        60,
        "the restarted beat's lock",
    )

    # Every feedback is captured: the worker retried through the outage, the relay runs again.
    stack.wait_for(
        lambda: (
            _count(postgres, "SELECT count(*) FROM feedback_feedback WHERE captured_at IS NOT NULL") == 15
        ),
        120,
        "every feedback to be captured after the restart",
    )
    figures = record(
        fault="PostgreSQL server stopped and restarted under web, worker and beat (5 posts refused with 503, retried)",
        sent=15,
        acknowledged=sum(1 for s in answers.values() if s == 201),
        persisted=_count(postgres, "SELECT count(*) FROM feedback_feedback"),
        captured=_count(postgres, "SELECT count(*) FROM feedback_feedback WHERE captured_at IS NOT NULL"),
    )
    assert figures["lost"] == 0 and figures["persisted"] == 15
    # Every rated output is in the review queue (a few were already there as an audit sample).
    assert _count(postgres, "SELECT count(DISTINCT output_id) FROM feedback_reviewitem") == 15
