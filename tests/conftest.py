import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings


@pytest.fixture(autouse=True)
def _fresh_serving_state():
    """Each test starts with an empty model slot: the registry it sees is its own."""
    from inference import serving

    serving.reset_unsafe()
    yield
    serving.reset_unsafe()


@pytest.fixture
def product_app(db):
    from inference.models import ProductApp

    return ProductApp.objects.create(name="shop")


@pytest.fixture
def api_key(product_app):
    from inference.services import api_key_create

    return api_key_create(app=product_app, name="test")[1]


@pytest.fixture
def other_api_key(db):
    from inference.models import ProductApp
    from inference.services import api_key_create

    return api_key_create(app=ProductApp.objects.create(name="other"), name="test")[1]


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def reviewer(django_user_model):
    return django_user_model.objects.create_user(username="rita", password="review-pass-1")


def _database_url() -> str:
    db = settings.DATABASES["default"]
    if "postgresql" not in db["ENGINE"]:
        pytest.fail("the worker tests need PostgreSQL: set DATABASE_URL (make test does)")
    return f"postgres://{db.get('USER') or 'postgres'}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


@pytest.fixture
def celery_worker_process(transactional_db):
    """A real Celery worker process on the real Redis broker and the test database."""
    if not settings.REDIS_URL:
        pytest.fail("the worker tests need Redis: set REDIS_URL (make test does)")
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # no stale messages from an earlier run
    log_path = Path(settings.VAR_DIR) / "test-worker.log"
    env = {**os.environ, "DATABASE_URL": _database_url(), "COGLOOP_EVAL_SIZE": str(settings.COGLOOP_EVAL_SIZE)}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "cogloop", "worker", "-Q", "training,default",
             "--pool", "solo", "--loglevel", "INFO", "--hostname", f"test-{os.getpid()}@%h"],
            cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    from cogloop.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not app.control.ping(timeout=1):
        if proc.poll() is not None:
            pytest.fail(f"the worker exited: {log_path.read_text()[-2000:]}")
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
