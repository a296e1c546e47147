"""Production settings: `check --deploy` passes, a default or missing SECRET_KEY is refused."""

import os
import subprocess
import sys

from django.conf import settings

STRONG_KEY = "k" * 20 + "Zq8#pL2@vN5!xR7$wT1^yU4&" + "m" * 10
# What production needs besides the key; nothing here connects to them.
SERVICES = {
    "DATABASE_URL": "postgres://cogloop@127.0.0.1:5432/cogloop",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def manage(*args, **env):
    # a production process starts without the test run's settings (the browser tests allow
    # synchronous ORM calls beside Playwright's event loop; no deployment may)
    dropped = ("SECRET_KEY", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE")
    full_env = {k: v for k, v in os.environ.items() if k not in dropped}
    full_env.update(COGLOOP_ENV="production", ALLOWED_HOSTS="cogloop.example.com", **{**SERVICES, **env})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_check_deploy():
    result = manage("check", "--deploy", "--fail-level", "WARNING", SECRET_KEY=STRONG_KEY)
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_a_missing_or_default_secret_key():
    missing = manage("check")
    assert missing.returncode != 0 and "SECRET_KEY" in missing.stderr
    default = manage("check", SECRET_KEY="cogloop-embedded-insecure-key-do-not-use-in-production")
    assert default.returncode != 0 and "SECRET_KEY" in default.stderr


def test_production_names_every_missing_setting():
    bare = {k: "" for k in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    result = manage("check", **bare)
    assert result.returncode != 0
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY"):
        assert name in result.stderr


def _imports_torch(*args, var_dir) -> bool:
    # The command under -X importtime (every module it imported is on stderr), on a SQLite
    # database of its own: a whole migrate runs every migration.
    dropped = ("DJANGO_ALLOW_ASYNC_UNSAFE", "DATABASE_URL", "REDIS_URL")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["COGLOOP_VAR_DIR"] = str(var_dir)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return any(line.rstrip().endswith("| torch") for line in result.stderr.splitlines())


def test_check_and_migrate_import_no_torch(tmp_path):
    assert not _imports_torch("check", var_dir=tmp_path)
    assert not _imports_torch("migrate", "--noinput", var_dir=tmp_path)
    assert (tmp_path / "cogloop.sqlite3").exists()
