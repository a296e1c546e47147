# Two commands for a newcomer: `make demo` (the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
# The tests use the machine's PostgreSQL and Redis unless told otherwise.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/cogloop
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: setup demo test system services worker beat serve bench bench-real-shape tiny-model lint clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# The CPU build of torch (on these machines it lies on disk; elsewhere it comes from PyPI).
	$(VENV)/bin/pip install --quiet "torch==2.13.*" || $(VENV)/bin/pip install --quiet "torch==2.13.*" --index-url https://download.pytorch.org/whl/cpu
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

# The closed loop on the embedded default (SQLite, filesystem broker, cogloop-tiny), from nothing.
demo: setup
	rm -rf var/demo
	COGLOOP_VAR_DIR=var/demo $(PY) manage.py demo $(ARGS)

# The machine's PostgreSQL, Redis and Chromium, installed when missing and started (idempotent).
system:
	bash .ci/system

services:
	bash .ci/services

# Everything, the browser tests (Chromium) and the deploy test (docker/compose.yaml's commands
# as local processes on a private Redis at port 6391) included.
# The engine's and the trainer's tests run first as plain Python (no Django, no database).
PLAIN_TESTS := tests/inference/engine tests/retrain/trainer tests/retrain/test_gate.py
test: setup system lint
	$(PY) -m pytest -p no:django $(ARGS) $(PLAIN_TESTS)
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) COGLOOP_VAR_DIR=var/test COGLOOP_EVAL_SIZE=150 \
		$(PY) -m pytest $(ARGS) $(addprefix --ignore=,$(PLAIN_TESTS))

# Long-running processes of the embedded mode (the demo starts its own worker).
worker: setup
	$(PY) -m celery -A cogloop worker -Q training,default --pool solo --loglevel INFO

# The schedule (relay, reconcile, monthly dataset, quarterly run) from the database; one at a time.
beat: setup
	$(PY) -m celery -A cogloop beat

serve: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py runserver 127.0.0.1:8000

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Benchmarks print markdown tables; results and their context live in docs/benchmarks.md.
bench: setup services
	$(PY) tests/bench/bench_feedback.py
	$(PY) tests/bench/bench_inference.py
	$(PY) tests/bench/bench_int8.py
	$(PY) tests/bench/bench_dashboards.py
	$(PY) tests/bench/bench_training.py

# Serving at DeepSeek-R1-Distill-Qwen-1.5B's shape (random weights) on a GPU: see docs/benchmarks.md.
bench-real-shape: setup
	$(PY) tests/bench/bench_inference_real_shape.py

tiny-model: setup
	$(PY) manage.py tiny_pretrain $(ARGS)

clean:
	rm -rf var/demo var/test
