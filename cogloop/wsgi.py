import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cogloop.settings")
application = get_wsgi_application()

# A serving process follows the model registry (promotions, rollbacks) from a thread.
from inference import serving  # noqa: E402

serving.start_watcher()
