"""WSGI entry point of the inference role: the web application plus a model slot that follows
the registry (promotions, rollbacks) from a watcher thread started at boot.

At boot it also registers BASE_MODEL when the registry is empty (the first serving process of
a fresh install does; the others find the version). That runs on a thread of its own: copying
a large model must not hold up the worker's boot, and the database may not be migrated yet
when this process starts beside the one that migrates, so it retries for a while.

In production a process of this role refuses to start without a model: neither BASE_MODEL nor
a registered version (``manage.py model register PATH --activate``).
"""

import logging
import os
import threading
import time

from django.conf import settings as django_settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cogloop.settings")
if not django_settings.configured:  # runserver's process already is every role ("all")
    os.environ.setdefault("COGLOOP_ROLE", "inference")
application = get_wsgi_application()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.db import DatabaseError, connection  # noqa: E402

from cogloop.errors import ApplicationError  # noqa: E402
from cogloop.logs import route_library_logs  # noqa: E402
from inference import services, serving  # noqa: E402  (need the apps loaded by get_wsgi_application)
from inference.models import ModelVersion  # noqa: E402

log = logging.getLogger("cogloop.inference")
REGISTER_BASE_RETRY_S = 600.0


def _register_base_model() -> None:
    deadline = time.monotonic() + REGISTER_BASE_RETRY_S
    try:
        while True:
            try:
                services.model_version_register_base_if_empty()
                return
            except ApplicationError as exc:  # a BASE_MODEL that must not be served: say why, once
                log.error("BASE_MODEL not registered: %s", exc.message)
                return
            except DatabaseError as exc:  # not reachable or not migrated yet
                if time.monotonic() > deadline:
                    log.error("BASE_MODEL not registered, the database did not answer: %s", exc)
                    return
                connection.close()
                time.sleep(5)
            except Exception:
                log.exception("BASE_MODEL not registered")
                return
    finally:
        connection.close()


def _refuse_without_a_model() -> None:
    if not django_settings.PRODUCTION or django_settings.BASE_MODEL:
        return
    try:
        registered = ModelVersion.objects.exists()
    finally:
        connection.close()
    if not registered:
        raise ImproperlyConfigured(
            "COGLOOP_ENV=production needs a model for the inference role: set BASE_MODEL to a model "
            "directory, or register one with `manage.py model register PATH --activate`"
        )


route_library_logs(transformers=True)
_refuse_without_a_model()
threading.Thread(target=_register_base_model, name="register-base-model", daemon=True).start()
serving.start_watcher()
