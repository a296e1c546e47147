"""The tests' root. Django's fixtures (tests/django_fixtures.py) load only with pytest-django, so
the engine and trainer tests also run as plain Python:
``pytest -p no:django tests/inference/engine tests/retrain/trainer``."""


def pytest_configure(config):
    if config.pluginmanager.hasplugin("django"):
        config.pluginmanager.import_plugin("tests.django_fixtures")
