"""Fixtures of the tests that run under pytest-django (loaded by tests/conftest.py)."""

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


@pytest.fixture(autouse=True)
def _broker_assumed_up():
    """A test that stopped a broker leaves the relay's pause behind; each test starts without it."""
    from cogloop import outbox

    outbox._broker_down_until = 0.0
    yield
    outbox._broker_down_until = 0.0


@pytest.fixture(autouse=True)
def _nothing_cached_across_tests(settings):
    """API keys are cached per process (as served); the capture policy is read afresh, because
    tests change it with plain updates. tests/feedback/test_query_counts.py tests both caches."""
    from feedback import services as feedback_services
    from inference import services as inference_services

    settings.CAPTURE_POLICY_CACHE_S = 0.0
    inference_services.api_key_forget()
    feedback_services.capture_policy_forget()
    yield
    inference_services.api_key_forget()
    feedback_services.capture_policy_forget()


@pytest.fixture(autouse=True)
def _no_random_audits(settings):
    """The audit sample and the golden hold-out are draws per output and annotation; tests that
    want them turn them on explicitly."""
    settings.COGLOOP = {**settings.COGLOOP, "CAPTURE_AUDIT_SHARE": 0.0, "GOLDEN_SHARE": 0.0}


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
def outbox_relay_running(transactional_db):
    """The beat's relay thread (cogloop.outbox.outbox_relay_loop), polling every 0.1 s: what
    publishes the outbox now that write requests do not."""
    from cogloop.outbox import outbox_relay_thread_start

    thread, stop = outbox_relay_thread_start(interval=0.1)
    yield thread
    stop.set()
    thread.join(timeout=15)


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def make_user(django_user_model):
    """A user holding ``role`` (reviewer by default; None for none)."""
    from annotation import services

    def make(username: str, role: str | None = services.REVIEWER, password: str = "pass-word-1", **extra):
        user = django_user_model.objects.create_user(username=username, password=password, **extra)
        if role:
            services.user_role_grant(user=user, role=role)
        return user

    return make


@pytest.fixture
def reviewer(make_user):
    """A reviewer, holding the reviewer role the pages require."""
    return make_user("rita", password="review-pass-1")


@pytest.fixture
def lead(make_user):
    from annotation import services

    return make_user("lena", role=services.LEAD, password="lead-pass-1")


@pytest.fixture
def policy(db):
    """The review policy row; tests set the shares they need (the defaults route by a random draw)."""
    from annotation import services

    def set_policy(*, second: float = 0.0, double: float = 0.0, lease_minutes: int = 10):
        row = services.review_policy_get()
        row.second_review_share, row.double_annotation_share, row.lease_minutes = (
            second,
            double,
            lease_minutes,
        )
        row.save()
        return row

    return set_policy


def _database_url() -> str:
    db = settings.DATABASES["default"]
    if "postgresql" not in db["ENGINE"]:
        pytest.fail("the worker tests need PostgreSQL: set DATABASE_URL (make test does)")
    return f"postgres://{db.get('USER') or 'postgres'}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def start_worker(broker_url: str, name: str) -> subprocess.Popen:
    """A real Celery worker process on ``broker_url`` and the test database."""
    log_path = Path(settings.VAR_DIR) / f"{name}.log"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": broker_url,
        "COGLOOP_EVAL_SIZE": str(settings.COGLOOP_EVAL_SIZE),
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "cogloop",
                "worker",
                "-Q",
                "training,default",
                "--pool",
                "solo",
                "--loglevel",
                "INFO",
                "--hostname",
                f"{name}-{os.getpid()}@%h",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    from cogloop.celery import app

    deadline = time.monotonic() + 60
    with app.connection_for_write(broker_url) as conn:
        while not app.control.ping(timeout=1, connection=conn):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker did not start: {log_path.read_text()[-2000:]}")
    return proc


def stop_process(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def celery_worker_process(transactional_db):
    """A real Celery worker process on the real Redis broker and the test database, with the
    outbox relay running beside it."""
    if not settings.REDIS_URL:
        pytest.fail("the worker tests need Redis: set REDIS_URL (make test does)")
    import redis

    from cogloop.outbox import outbox_relay_thread_start

    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # no stale messages from an earlier run
    proc = start_worker(settings.REDIS_URL, "test-worker")
    # and the beat's outbox relay, which publishes what the services queue (cogloop.outbox)
    relay, stop = outbox_relay_thread_start(interval=0.1)
    yield proc
    stop.set()
    relay.join(timeout=15)
    stop_process(proc)


CHROMIUM = os.environ.get("COGLOOP_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def chromium():
    """A real headless Chromium (Debian's package, driven by Playwright); .ci/run installs it."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium, or set COGLOOP_CHROMIUM)"
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between page steps are still plain synchronous calls.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


class _CountingApp:
    """Wraps the live server's WSGI app: how many requests it is answering and when the last
    one came in. The browser's own request events do not see everything a page sends on
    leave (a ``sendBeacon``), so the server is the one to ask whether it is quiet."""

    def __init__(self, app) -> None:
        import threading

        self.app, self.in_flight, self.last_started = app, 0, 0.0
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self._lock:
            self.in_flight += 1
            self.last_started = time.monotonic()
        try:
            return self.app(environ, start_response)
        finally:
            with self._lock:
                self.in_flight -= 1

    def wait_quiet(self, quiet: float = 0.3, limit: float = 10.0) -> None:
        """Until no request is being answered and none has started for ``quiet`` seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.in_flight == 0 and time.monotonic() - self.last_started >= quiet:
                return
            time.sleep(0.05)


def _counting_app(live_server) -> _CountingApp:
    httpd = live_server.thread.httpd
    if not isinstance(httpd.get_app(), _CountingApp):
        httpd.set_app(_CountingApp(httpd.get_app()))
    return httpd.get_app()


@pytest.fixture
def page(chromium, live_server):
    """A fresh browser context (no cookies) per test, pointed at the live server."""
    server = _counting_app(live_server)
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    # Leaving a page can send requests (the item page releases its lease on leave): let them
    # land and finish while the test database still exists, not during its flush.
    page.goto("about:blank")
    context.close()
    server.wait_quiet()


def browser_login(page, username: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_load_state()
