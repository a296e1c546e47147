"""WSGI entry point of the inference role: the web application plus a model slot that follows
the registry (promotions, rollbacks) from a watcher thread started at boot."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cogloop.settings")
application = get_wsgi_application()

from inference import serving  # noqa: E402  (needs the apps loaded by get_wsgi_application)

serving.start_watcher()
