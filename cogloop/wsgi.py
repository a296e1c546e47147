"""WSGI entry point of the web role: API except generation, review UI, dashboards, admin.

Loads no model and imports no torch: /readyz checks the database only, generation answers 503
(the proxy sends it to the inference role), and a promotion is verified by a worker.
The inference role uses ``inference.wsgi``, which also follows the model registry.
"""

import os

from django.conf import settings as django_settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cogloop.settings")
if not django_settings.configured:  # runserver's process already is every role ("all")
    os.environ.setdefault("COGLOOP_ROLE", "web")
application = get_wsgi_application()

from cogloop.logs import route_library_logs  # noqa: E402

route_library_logs(transformers=False)
