"""docker/compose.yaml's services as local processes: each service's command and environment,
read from the file, run against the machine's PostgreSQL (a database of its own) and a private
Redis, with the production settings. No container engine: what the file says is what runs,
only the image's paths are swapped for local ones."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"
SECRET_KEY = "deploy-test-" + "Zq8#pL2@vN5!xR7$wT1^yU4&" + "k" * 30


def image_build_static(target: Path) -> None:
    """The Dockerfile's collectstatic step, with its own environment, into ``target``."""
    text = (ROOT / "docker" / "Dockerfile").read_text().replace("\\\n", " ")
    step = next(line for line in text.splitlines() if line.startswith("RUN") and "collectstatic" in line)
    assignments = dict(re.findall(r"([A-Z_]+)=(\S+)", step.split("python manage.py")[0]))
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env={
            **keep,
            **assignments,
            "STATIC_ROOT": str(target),
            "COGLOOP_VAR_DIR": str(target.parent / "build"),
        },
        check=True,
        capture_output=True,
    )


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?message} against ``variables``."""

    def one(match: re.Match) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if name in variables and variables[name] != "":
            return variables[name]
        if op == ":-":
            return rest
        if op == ":?":
            raise KeyError(f"{name}: {rest}")
        return ""

    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:-|:\?)([^}]*))?\}", one, value)


def local_command(command: str) -> list[str]:
    """The image's command with this machine's interpreter (the image runs from /app = the repo)."""
    argv = shlex.split(command)
    head = {
        "python": [sys.executable],
        "gunicorn": [sys.executable, "-m", "gunicorn"],
        "celery": [sys.executable, "-m", "celery"],
    }
    if argv[0] == "sh":  # sh -c "python manage.py ... && python manage.py ..."
        script = argv[2].replace("python ", f"{sys.executable} ")
        return ["sh", "-c", script]
    return head[argv[0]] + argv[1:]


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None
    extra: dict = field(default_factory=dict)

    def start(self) -> Service:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=open(self.log, "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def run_once(self, timeout: float = 120) -> str:
        result = subprocess.run(
            self.argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        self.log.write_text(result.stdout + result.stderr)
        assert result.returncode == 0, f"{self.name} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines() if self.log.exists() else []


def service(spec: dict, name: str, variables: dict[str, str], base: Path, **overrides: str) -> Service:
    s = spec["services"][name]
    env = {k: interpolate(str(v), variables) for k, v in s.get("environment", {}).items()}
    # Image paths to local ones; everything else exactly as the file sets it.
    env.update(
        MODEL_STORE=str(base / "models"),
        COGLOOP_VAR_DIR=str(base / "data"),
        PROMETHEUS_MULTIPROC_DIR=str(base / "metrics" / name),
        BASE_MODEL=str(ROOT / "inference" / "engine" / "cogloop_tiny"),
    )
    # The image's static files (ENV STATIC_ROOT=/app/static) unless the service names its own.
    env["STATIC_ROOT"] = str(base / ("static" if "STATIC_ROOT" in env else "image-static"))
    env.update(overrides)
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return Service(name, local_command(s["command"]), {**keep, **env}, base / f"{name}.log")


def get(url: str, headers: dict | None = None, data: bytes | None = None, timeout: float = 30):
    """(status, headers, body) without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    request = urllib.request.Request(url, data=data, headers=headers or {})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wait_for(check, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []
