"""Settings, read from the environment only (django-environ).

With nothing set this is the embedded default: SQLite under var/, a filesystem Celery
broker under var/, the shipped cogloop-tiny model, one process in every role. Production
(COGLOOP_ENV=production) needs DATABASE_URL, REDIS_URL and SECRET_KEY and refuses to start
naming every one that is missing; its inference role also needs a model (BASE_MODEL, or a
version registered with ``manage.py model register``: inference.wsgi checks).
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

VAR_DIR = Path(env("COGLOOP_VAR_DIR", default=str(BASE_DIR / "var")))

COGLOOP_ENV = env("COGLOOP_ENV", default="embedded")
PRODUCTION = COGLOOP_ENV == "production"

# What this process is (DESIGN.md, process roles): it decides what /readyz checks and whether
# the process may load a model. The WSGI entry points set their own (cogloop.wsgi: web,
# inference.wsgi: inference); Celery processes take it from the environment.
ROLES = ("web", "inference", "worker", "trainer", "beat", "all")
COGLOOP_ROLE = env("COGLOOP_ROLE", default="all")
if COGLOOP_ROLE not in ROLES:
    raise ImproperlyConfigured(f"COGLOOP_ROLE must be one of {', '.join(ROLES)}; got {COGLOOP_ROLE!r}")
# Roles that never hold a model: promotion from them hands verification to a worker.
MODEL_FREE_ROLES = ("web", "beat")

_DEV_SECRET = "cogloop-embedded-insecure-key-do-not-use-in-production"
SECRET_KEY = env("SECRET_KEY", default="") if PRODUCTION else env("SECRET_KEY", default=_DEV_SECRET)
if PRODUCTION:
    # Every missing value named at once: an operator fixes the environment in one go, and
    # nothing falls back to SQLite or the filesystem broker behind their back.
    _missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not env(name, default="")]
    if not SECRET_KEY or SECRET_KEY == _DEV_SECRET or len(SECRET_KEY) < 50:
        _missing.append("SECRET_KEY (50 or more random characters, not the default)")
    if _missing:
        raise ImproperlyConfigured("COGLOOP_ENV=production needs " + ", ".join(_missing))
DEBUG = env.bool("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"]
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "django_celery_beat",
    "cogloop",
    "inference",
    "feedback",
    "annotation",
    "retrain",
    "ops",
    "demo",
]

MIDDLEWARE = [
    # First: every log line of the request, and its response, carry the request id.
    "cogloop.logs.RequestIdMiddleware",
    "cogloop.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last: it turns a request axes marked as locked out into the lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "cogloop.urls"
# runserver (the embedded mode: one process is every role) serves generation too, so it uses
# the inference role's entry point, which follows the model registry. gunicorn names its role's.
WSGI_APPLICATION = "inference.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "cogloop" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if env("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
    # Persistent connections: a new PostgreSQL connection per request costs more than the request.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    # WAL and IMMEDIATE transactions let the web process and the worker share the file.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "cogloop.sqlite3",
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": VAR_DIR / "test.sqlite3"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Axes' check comes first: a locked-out username and address is refused before any password is
# compared (cogloop.lockout).
AUTHENTICATION_BACKENDS = [
    "cogloop.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
# Username and address together: a guesser is stopped, and nobody elsewhere can lock a
# colleague out by typing their name. The address is REMOTE_ADDR (axes' default): behind the
# proxy every client shares the proxy's, which makes the lock per username.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "cogloop.lockout.lockout_response"
# Every successful login is in the admin's log already (last_login); failures are what matter.
AXES_DISABLE_ACCESS_LOG = True

# Every page is held to this; nothing the templates render is inline (tests/inline_code.py).
# Swagger UI's page loads its script and style from static files (cogloop.urls).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "frame-ancestors": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "object-src": [NONE],
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/review/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# One time format across the product, the admin included: "2026-03-04 14:50" (cogloop/formats).
FORMAT_MODULE_PATH = ["cogloop.formats"]
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# The image builds its static files into STATIC_ROOT=/app/static (docker/Dockerfile).
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed, compressed files served by whitenoise in production (after collectstatic).
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

if PRODUCTION:
    # Behind a TLS-terminating proxy; every value can be relaxed by its variable, none by default.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
    # Probes and the scraper talk plain HTTP to the process inside the network, never through
    # the proxy (which does not route /metrics at all): no redirect to https for them.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "EXCEPTION_HANDLER": "cogloop.api.exception_handler",
    # DRF's own, with a JSON parser that answers absurd nesting with a 400.
    "DEFAULT_PARSER_CLASSES": [
        "cogloop.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"api_key": env("API_KEY_RATE", default="6000/min")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Cogloop API",
    "DESCRIPTION": "Generate and score reasoning, send feedback. Authenticate with `Authorization: Bearer <key>`.",
    "VERSION": "1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
}

# Throttle counters and other shared state: Redis when there is one, process memory otherwise.
# Short socket timeouts: with Redis away a request must fall back (inference.api's throttle)
# in about a second, not hang.
if env("REDIS_URL", default=""):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env("REDIS_URL"),
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: Redis in production, kombu's filesystem transport (no server) when embedded.
REDIS_URL = env("REDIS_URL", default="")
BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # A message a killed worker had taken goes back to the queue after this many seconds. Short,
    # so a capture waits minutes, not hours. A training run outlives it: its redelivered message
    # finds the run's DB lease held and returns (retrain training_run_acquire), and a killed
    # trainer's run is picked up by the reconcile's stale-lease check, not by this timeout.
    _VISIBILITY = env.int("BROKER_VISIBILITY_TIMEOUT", default=600)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": _VISIBILITY,
        # Workers sweep for such messages every quarter of the timeout (kombu's default sweep
        # is every 100 s whatever the timeout), so one comes back within ~1.25x the timeout.
        "unacked_restore_interval": max(1, min(60, _VISIBILITY // 4)),
        "unacked_restore_throttle": 1,
        "socket_connect_timeout": 2,
    }
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),  # else kombu writes ./control in the cwd
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"retrain.training_run_execute": {"queue": "training"}}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Models: every artifact lives under the store. BASE_MODEL defaults to the shipped tiny one when
# embedded; production names its own (or registers one by hand), so it has no default there.
MODEL_STORE = Path(env("MODEL_STORE", default=str(VAR_DIR / "models")))
_TINY = BASE_DIR / "inference" / "engine" / "cogloop_tiny"
_base_model = env("BASE_MODEL", default="" if PRODUCTION else str(_TINY))
BASE_MODEL = Path(_base_model) if _base_model else None
# Serving processes poll the registry for the active version this often (seconds).
MODEL_WATCH_INTERVAL = env.float("MODEL_WATCH_INTERVAL", default=2.0)

COGLOOP = {
    "SCORE_WEIGHT_CONSISTENCY": env.float("SCORE_WEIGHT_CONSISTENCY", default=0.6),
    "SCORE_WEIGHT_ADAPTABILITY": env.float("SCORE_WEIGHT_ADAPTABILITY", default=0.4),
    "MAX_PROMPT_CHARS": env.int("MAX_PROMPT_CHARS", default=4000),
    "MAX_OUTPUT_CHARS": env.int("MAX_OUTPUT_CHARS", default=200000),
    "MAX_NEW_TOKENS_LIMIT": env.int("MAX_NEW_TOKENS_LIMIT", default=512),
    "DEFAULT_MAX_NEW_TOKENS": env.int("DEFAULT_MAX_NEW_TOKENS", default=96),
    "CAPTURE_SCORE_BELOW": env.float("CAPTURE_SCORE_BELOW", default=0.6),
    # Initial values of the admin-editable capture policy row.
    "CAPTURE_AUDIT_SHARE": env.float("CAPTURE_AUDIT_SHARE", default=0.02),
    "GATE_MIN_GAIN": env.float("GATE_MIN_GAIN", default=0.02),
    "DATASET_MAX_GROWTH": env.float("DATASET_MAX_GROWTH", default=0.10),
    # Dashboards' daily roll-ups (ops.services.rollups_refresh): closed days recomputed on every
    # run, and the most days one run recomputes (the first run's backfill goes on in later runs).
    "ROLLUP_REFRESH_DAYS": env.int("ROLLUP_REFRESH_DAYS", default=2),
    "ROLLUP_MAX_DAYS_PER_RUN": env.int("ROLLUP_MAX_DAYS_PER_RUN", default=60),
    # Prompts whose answers the head learns to judge after each training run (retrain.trainer.verifier).
    "VERIFIER_PROMPTS": env.int("VERIFIER_PROMPTS", default=200),
    # Share of approved corrections held out into their app's golden eval set (never trained on).
    "GOLDEN_SHARE": env.float("GOLDEN_SHARE", default=0.1),
    # Dynamic batching (inference/engine/batcher.py).
    "BATCH_SIMPLE_MAX": env.int("BATCH_SIMPLE_MAX", default=32),
    "BATCH_COMPLEX_MAX": env.int("BATCH_COMPLEX_MAX", default=4),
    "BATCH_MAX_WAIT_MS": env.float("BATCH_MAX_WAIT_MS", default=10.0),
    # torch threads of the batcher's thread. 1 on shared CPUs (a barrier across threads that
    # other processes preempt stalls a whole time slice); raise it where serving owns its cores.
    "BATCH_INTRA_OP_THREADS": env.int("BATCH_INTRA_OP_THREADS", default=1),
    # Where serving runs the model: "cpu", "cuda" or "cuda:N"; weights in "auto" (float32 on a
    # CPU, bfloat16 on a GPU), "float32", "bfloat16" or "float16". The head stays float32.
    "SERVE_DEVICE": env("SERVE_DEVICE", default="cpu"),
    "SERVE_DTYPE": env("SERVE_DTYPE", default="auto"),
    "GENERATE_TIMEOUT_S": env.float("GENERATE_TIMEOUT_S", default=120.0),
    "GENERATE_DEFAULT_N": env.int("GENERATE_DEFAULT_N", default=1),  # answers per /generate (sample group)
    "GATE_SLICE_TOLERANCE": env.float("GATE_SLICE_TOLERANCE", default=0.05),
    # Slices smaller than this are reported but not judged: a few items swing by >5 points.
    "GATE_MIN_SLICE_N": env.int("GATE_MIN_SLICE_N", default=30),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "cogloop.logs.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "cogloop.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env("LOG_FORMAT", default="json" if PRODUCTION else "plain"),
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="WARNING")},
    "loggers": {
        "cogloop": {"level": env("LOG_LEVEL", default="INFO"), "propagate": True},
        # Celery's own lines (a task received, succeeded, a beat sending) are worth keeping.
        "celery": {"level": env("LOG_LEVEL", default="INFO"), "propagate": True},
    },
}

# The held-out evaluation set the promotion gate measures on (workload problems).
COGLOOP_EVAL_SIZE = env.int("COGLOOP_EVAL_SIZE", default=300)
COGLOOP_EVAL_SEED = env.int("COGLOOP_EVAL_SEED", default=20261)

# A relay every few seconds publishes outbox rows the beat's relay thread (or, embedded, the
# relay after commit) could not send: the backstop of cogloop.outbox.
from celery.schedules import crontab  # noqa: E402

CELERY_BEAT_SCHEDULE = {
    "outbox-relay": {
        "task": "cogloop.outbox_relay",
        "schedule": env.float("OUTBOX_RELAY_EVERY", default=5.0),
    },
    "monthly-dataset": {
        "task": "retrain.dataset_version_build_monthly",
        "schedule": crontab(0, 2, day_of_month=1),
    },
    "quarterly-training": {
        "task": "retrain.training_run_start_quarterly",
        "schedule": crontab(0, 4, day_of_month=1, month_of_year="1,4,7,10"),
    },
    "training-reconcile": {"task": "retrain.training_run_reconcile", "schedule": 300.0},
    # The dashboards' daily roll-ups: changed, recent and missing closed days (ops.services).
    "dashboard-rollups": {
        "task": "ops.rollups_refresh",
        "schedule": env.float("ROLLUP_REFRESH_EVERY", default=600.0),
    },
    # Feedback whose capture task never ran (a message lost with a Redis restart, retries spent)
    # is captured here; a capture counts as done only when Feedback.captured_at is set.
    "feedback-capture-reconcile": {
        "task": "feedback.feedback_capture_reconcile",
        "schedule": env.float("CAPTURE_RECONCILE_EVERY", default=60.0),
    },
}
# How old an uncaptured feedback must be before the reconcile captures it itself: longer than a
# capture normally takes through the outbox and the worker, so the two rarely meet (and when
# they do, the capture is idempotent).
FEEDBACK_CAPTURE_GRACE_S = env.int("FEEDBACK_CAPTURE_GRACE_S", default=300)
# Feedback ids per capture message: a bulk of 1,000 is 20 short tasks, not one long one.
FEEDBACK_CAPTURE_CHUNK = 50
# A request that relays after commit must not hang on an unreachable broker.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# Who publishes outbox rows (cogloop.outbox). With PostgreSQL the beat's relay thread, polling
# this often (seconds), so a write request never waits on the broker; embedded (SQLite, where
# the demo runs no beat) the request itself, right after its commit.
OUTBOX_RELAY_POLL_S = env.float("OUTBOX_RELAY_POLL_S", default=0.2)
OUTBOX_RELAY_AFTER_COMMIT = env.bool("OUTBOX_RELAY_AFTER_COMMIT", default=not env("DATABASE_URL", default=""))
# How long a process trusts what it read of an API key and of the capture policy (seconds): a
# revoked key stops working in every process within this, at once in the process that revoked it.
API_KEY_CACHE_S = env.float("API_KEY_CACHE_S", default=5.0)
CAPTURE_POLICY_CACHE_S = env.float("CAPTURE_POLICY_CACHE_S", default=5.0)

FEEDBACK_MAX_COMMENT_CHARS = env.int("FEEDBACK_MAX_COMMENT_CHARS", default=4000)
FEEDBACK_BULK_MAX_ITEMS = 1000
# The largest body read (a larger one is a JSON 413 naming this). A bulk at its documented
# limits (1,000 items, each a 4,000-character comment, 20 flags of 50 and a 200-character key)
# is 5.4 MB in ASCII and 13.4 MB with comments in three-byte UTF-8 (CJK); Django's 2.5 MB
# default refused it. Characters sent as \uXXXX escapes can still exceed this: such a
# client sends its bulk in parts.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=16 * 1024 * 1024)

# Beat: the schedule in the database (admin: Periodic tasks), one beat at a time (cogloop.beat).
CELERY_BEAT_SCHEDULER = "cogloop.beat:LockedDatabaseScheduler"
