"""The trainer imports no Django, and neither do its tests: ``pytest -p no:django
tests/retrain/trainer`` runs them without a settings module or a database. The suite's
autouse fixtures (tests/conftest.py) reset serving state and Django settings; here they are
replaced by ones that need neither."""

import pytest


@pytest.fixture(autouse=True)
def _fresh_serving_state():
    yield


@pytest.fixture(autouse=True)
def _no_random_audits():
    yield
