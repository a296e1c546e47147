"""Production settings: `check --deploy` passes, a default or missing SECRET_KEY is refused."""

import os
import subprocess
import sys

from django.conf import settings

STRONG_KEY = "k" * 20 + "Zq8#pL2@vN5!xR7$wT1^yU4&" + "m" * 10


def manage(*args, **env):
    # a production process starts without the test run's settings (the browser tests allow
    # synchronous ORM calls beside Playwright's event loop; no deployment may)
    dropped = ("SECRET_KEY", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE")
    full_env = {k: v for k, v in os.environ.items() if k not in dropped}
    full_env.update(COGLOOP_ENV="production", ALLOWED_HOSTS="cogloop.example.com", **env)
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
