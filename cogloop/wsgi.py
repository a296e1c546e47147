"""WSGI entry point of the web role: API, review UI, dashboards, admin. Loads no model.

The inference role uses ``inference.wsgi``, which also follows the model registry.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cogloop.settings")
application = get_wsgi_application()
